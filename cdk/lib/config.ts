/**
 * Deployment configuration: CDK context (`-c key=value`) first, then the
 * environment variable of the same meaning (names as in `.env-sample`), then a
 * default. Secrets are never read here: only the *names* of the Secrets
 * Manager secrets that hold them, which the apps resolve at run time.
 */

export type Signer = 'local' | 'cdp' | 'cdp-export' | 'kms' | 'agentcore';
export type Network = 'base-sepolia' | 'base';

export interface DeployConfig {
  /** Prefix for stack names and physical names. */
  readonly prefix: string;
  readonly network: Network;
  readonly sellerWallet: string;
  readonly facilitatorUrl: string;
  readonly rpcUrl?: string;
  readonly usdcContract?: string;
  /** Agent chat model: an inference profile id (e.g. `us.anthropic...`) or a model id. */
  readonly modelId: string;
  /** Seller's image model. */
  readonly novaCanvasModelId: string;
  /** Seller's prompt/quality model. */
  readonly novaLiteModelId: string;
  readonly signer: Signer;
  /** Required when signer is `kms`: the secp256k1 signing key. */
  readonly kmsKeyArn?: string;
  /** CDP account (created if missing) for the `cdp` and `cdp-export` signers. */
  readonly cdpAccountName: string;
  /** CDP API key id (not a secret; its secret half lives in Secrets Manager). */
  readonly cdpApiKeyId?: string;
  /**
   * AgentCore Payments. `create`: the stack creates the payment manager
   * (context `createPaymentManager=true`); otherwise `arn` names an existing
   * one. The connector and instrument live under the manager (created with
   * the AgentCore CLI/API: an instrument is a user's wallet), so their ids
   * are given; all three are required for the `agentcore` signer.
   */
  readonly payments: {
    readonly create: boolean;
    readonly arn?: string;
    readonly connectorId?: string;
    readonly instrumentId?: string;
  };
  readonly sessionBudgetUsdc: string;
  readonly autoApproveMaxUsdc: string;
  /** What one user may commit per UTC day, across all their sessions (decimal USDC). */
  readonly userDailyCapUsdc: string;
  /** What the wallet may commit per UTC day, across all users (decimal USDC). */
  readonly walletDailyCapUsdc: string;
  /** How long a quote above auto-approve, and the user's approval of it, stay valid. */
  readonly quoteTtlSeconds: number;
  /** Secrets Manager secret names (values never enter the template). */
  readonly secrets: {
    readonly cdpApiKeySecret: string;
    readonly cdpWalletSecret: string;
    readonly buyerPrivateKey: string;
  };
  /** Whether the seller gateway authenticates to the CDP facilitator. */
  readonly gatewayUsesCdp: boolean;
  readonly imagesPrefix: string;
  readonly imageExpiryDays: number;
  readonly presignExpirySeconds: number;
  /** Directory with the gateway Lambda's `bootstrap` (cargo-lambda output). */
  readonly gatewayCodeDir: string;
  /** Directory with the chat Lambda's `bootstrap`. */
  readonly chatCodeDir: string;
  /** Directory with the chat `$connect` authorizer's `bootstrap`. */
  readonly authorizerCodeDir: string;
  /** Where Cognito's OAuth code flow may send a signed-in browser back to. */
  readonly chatCallbackUrls: string[];
  /** Cognito hosted sign-in domain prefix (globally unique per region); derived from the stack id if unset. */
  readonly cognitoDomainPrefix?: string;
  /** The web chat page (`agent/web/`), deployed as is to the chat site's bucket. */
  readonly webDir: string;
  /** Docker build context of the agent (the repo root, with the Dockerfile). */
  readonly agentContextDir: string;
}

type Lookup = (key: string) => string | undefined;

export function loadConfig(context: Lookup, env: Lookup, repoRoot: string): DeployConfig {
  const get = (ctxKey: string, envKey: string | undefined, fallback?: string): string | undefined => {
    const v = context(ctxKey) ?? (envKey ? env(envKey) : undefined);
    return v !== undefined && v !== '' ? v : fallback;
  };
  const must = (ctxKey: string, envKey: string | undefined, fallback: string): string =>
    get(ctxKey, envKey, fallback) as string;
  // Money settings the agent parses at start-up: a value it would refuse
  // fails the synth here instead of the runtime after a deploy.
  const usdc = (ctxKey: string, envKey: string, fallback: string): string => {
    const v = must(ctxKey, envKey, fallback).trim();
    if (!isUsdc(v)) {
      throw new Error(`${ctxKey} (context) or ${envKey} must be decimal USDC with at most 6 decimals, got ${v}`);
    }
    return v;
  };

  const network = must('network', 'NETWORK', 'base-sepolia');
  if (network !== 'base-sepolia' && network !== 'base') {
    throw new Error(`network must be base-sepolia or base, got ${network}`);
  }
  const signer = must('signer', 'SIGNER', 'cdp');
  if (!['local', 'cdp', 'cdp-export', 'kms', 'agentcore'].includes(signer)) {
    throw new Error(`signer must be local, cdp, cdp-export, kms or agentcore, got ${signer}`);
  }
  const payments = {
    create: must('createPaymentManager', undefined, 'false') === 'true',
    arn: get('paymentManagerArn', 'AGENTCORE_PAYMENT_MANAGER_ARN'),
    connectorId: get('paymentConnectorId', 'AGENTCORE_PAYMENT_CONNECTOR_ID'),
    instrumentId: get('paymentInstrumentId', 'AGENTCORE_PAYMENT_INSTRUMENT_ID'),
  };
  if (payments.create && payments.arn) {
    throw new Error('set createPaymentManager=true or paymentManagerArn, not both');
  }
  if (payments.arn !== undefined && !/^arn:[^:]+:bedrock-agentcore:[^:]*:\d{12}:payment-manager\/.+$/.test(payments.arn)) {
    throw new Error('paymentManagerArn / AGENTCORE_PAYMENT_MANAGER_ARN must be a payment-manager ARN');
  }
  if (signer === 'agentcore' && (!(payments.create || payments.arn) || !payments.connectorId || !payments.instrumentId)) {
    throw new Error(
      'signer agentcore needs a payment manager (createPaymentManager=true or paymentManagerArn) and paymentConnectorId and paymentInstrumentId (or AGENTCORE_PAYMENT_*)',
    );
  }
  const kmsKeyArn = get('kmsKeyArn', 'KMS_KEY_ID');
  if (signer === 'kms' && !kmsKeyArn?.startsWith('arn:')) {
    throw new Error('signer kms needs kmsKeyArn (context) or KMS_KEY_ID as a full key ARN');
  }
  // The seller is the only address the agent may pay and the gateway's payee:
  // a deployment without one would fail at start-up (agent) or burn funds
  // (gateway), so refuse to synthesise it.
  const sellerWallet = get('sellerWallet', 'SELLER_WALLET');
  if (!sellerWallet || !/^0x[0-9a-fA-F]{40}$/.test(sellerWallet) || /^0x0{40}$/.test(sellerWallet)) {
    throw new Error('sellerWallet (context) or SELLER_WALLET must be a non-zero 0x address');
  }
  const cdpApiKeyId = get('cdpApiKeyId', 'CDP_API_KEY_ID');
  if ((signer === 'cdp' || signer === 'cdp-export') && !cdpApiKeyId) {
    throw new Error(`signer ${signer} needs cdpApiKeyId (context) or CDP_API_KEY_ID`);
  }
  const quoteTtl = must('quoteTtlSeconds', 'QUOTE_TTL_SECONDS', '300').trim();
  const quoteTtlSeconds = Number(quoteTtl);
  if (!/^[0-9]+$/.test(quoteTtl) || quoteTtlSeconds <= 0) {
    throw new Error(`quoteTtlSeconds (context) or QUOTE_TTL_SECONDS must be a whole number of seconds above 0, got ${quoteTtl}`);
  }
  return {
    prefix: must('prefix', undefined, 'X402Agent'),
    network,
    sellerWallet,
    facilitatorUrl: must('facilitatorUrl', 'FACILITATOR_URL', 'https://x402.org/facilitator'),
    rpcUrl: get('rpcUrl', 'RPC_URL'),
    usdcContract: get('usdcContract', 'USDC_CONTRACT'),
    modelId: must('modelId', 'MODEL_ID', 'us.anthropic.claude-sonnet-4-5-20250929-v1:0'),
    novaCanvasModelId: must('novaCanvasModelId', 'NOVA_CANVAS_MODEL_ID', 'amazon.nova-canvas-v1:0'),
    novaLiteModelId: must('novaLiteModelId', 'NOVA_LITE_MODEL_ID', 'us.amazon.nova-2-lite-v1:0'),
    signer: signer as Signer,
    kmsKeyArn: signer === 'kms' ? kmsKeyArn : undefined,
    cdpAccountName: must('cdpAccountName', 'CDP_ACCOUNT_NAME', 'x402-agent'),
    cdpApiKeyId,
    payments,
    sessionBudgetUsdc: usdc('sessionBudgetUsdc', 'SESSION_BUDGET_USDC', '1.00'),
    autoApproveMaxUsdc: usdc('autoApproveMaxUsdc', 'AUTO_APPROVE_MAX_USDC', '0.10'),
    userDailyCapUsdc: usdc('userDailyCapUsdc', 'USER_DAILY_CAP_USDC', '10.00'),
    walletDailyCapUsdc: usdc('walletDailyCapUsdc', 'WALLET_DAILY_CAP_USDC', '100.00'),
    quoteTtlSeconds,
    secrets: {
      cdpApiKeySecret: must('cdpApiKeySecretName', undefined, 'x402-agent/cdp-api-key-secret'),
      cdpWalletSecret: must('cdpWalletSecretName', undefined, 'x402-agent/cdp-wallet-secret'),
      buyerPrivateKey: must('buyerPrivateKeySecretName', undefined, 'x402-agent/buyer-private-key'),
    },
    gatewayUsesCdp: must('gatewayUsesCdp', undefined, 'false') === 'true',
    imagesPrefix: 'images/',
    imageExpiryDays: Number(must('imageExpiryDays', undefined, '30')),
    presignExpirySeconds: Number(must('presignExpirySeconds', 'PRESIGN_EXPIRY_SECONDS', '3600')),
    gatewayCodeDir: must('gatewayCodeDir', undefined, `${repoRoot}/target/lambda/gateway-lambda`),
    chatCodeDir: must('chatCodeDir', undefined, `${repoRoot}/target/lambda/chat-lambda`),
    authorizerCodeDir: must('authorizerCodeDir', undefined, `${repoRoot}/target/lambda/chat-authorizer`),
    chatCallbackUrls: must('chatCallbackUrls', 'CHAT_CALLBACK_URLS', 'http://localhost:8080/')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== ''),
    cognitoDomainPrefix: get('cognitoDomainPrefix', 'COGNITO_DOMAIN_PREFIX'),
    webDir: must('webDir', undefined, `${repoRoot}/agent/web`),
    agentContextDir: must('agentContextDir', undefined, repoRoot),
  };
}

/** Decimal USDC as the agent parses it (`x402::Usdc`): `0.04`, `1`, `$10.00`; at most 6 decimals. */
export function isUsdc(s: string): boolean {
  return /^\$?(\d+(\.\d{0,6})?|\.\d{1,6})$/.test(s);
}

/** Foundation-model ARNs behind a model or inference-profile id (any region: a
 * cross-region profile routes to several), plus the profile itself. */
export function modelResourceArns(modelId: string, region: string, account: string, partition = 'aws'): string[] {
  const profile = /^(us|eu|apac|jp|au|ca|global)\.(.+)$/.exec(modelId);
  if (profile) {
    return [
      `arn:${partition}:bedrock:${region}:${account}:inference-profile/${modelId}`,
      `arn:${partition}:bedrock:*::foundation-model/${profile[2]}`,
    ];
  }
  return [`arn:${partition}:bedrock:${region}::foundation-model/${modelId}`];
}
