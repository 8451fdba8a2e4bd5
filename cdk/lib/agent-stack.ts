import { CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as agentcore from 'aws-cdk-lib/aws-bedrockagentcore';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { DeployConfig, modelResourceArns } from './config';
import { privateBucket, secretRef, ttlTable } from './common';
import { ack, nagAccount, nagRegion, objectsFinding } from './nag';

/** Partition key of the agent state table (see `tools/src/access/dynamodb.rs`). */
export const AGENT_STATE_KEY = 'pk';

/**
 * What the agent does to its state table, and nothing more: `GetItem`
 * (counters, a reservation before its release), `PutItem` (session owner),
 * and the `Put`/`Update`/`Delete` inside its `TransactWriteItems`, which IAM
 * authorises as `PutItem`/`UpdateItem`/`DeleteItem` (there is no
 * `TransactWriteItems` action; it uses no `ConditionCheck`, `Query` or `Scan`).
 */
export const AGENT_STATE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
];

/** Never staged into the Docker build context (also in /.dockerignore). */
export const AGENT_ASSET_EXCLUDES = [
  'target',
  '**/target',
  '**/node_modules',
  '.local',
  '.venv',
  'cdk',
  '.git',
  '.env',
  '.env.*',
  '**/*.png',
];

/** What the agent calls on AgentCore Payments (`SIGNER=agentcore`). */
export const AGENTCORE_PAYMENT_ACTIONS = [
  'bedrock-agentcore:CreatePaymentSession',
  'bedrock-agentcore:GetPaymentSession',
  'bedrock-agentcore:ProcessPayment',
  'bedrock-agentcore:GetPaymentInstrument',
  'bedrock-agentcore:GetPaymentInstrumentBalance',
];

/**
 * A payment manager authorising callers with IAM (SigV4: the runtime role),
 * with the role the service assumes for it (no permissions of its own here:
 * connectors' credential providers grant what they need).
 */
function paymentManager(scope: Construct, prefix: string): agentcore.CfnPaymentManager {
  const serviceRole = new iam.Role(scope, 'PaymentManagerRole', {
    assumedBy: new iam.ServicePrincipal('bedrock-agentcore.amazonaws.com'),
    description: 'Assumed by AgentCore Payments for the x402 agent payment manager',
  });
  return new agentcore.CfnPaymentManager(scope, 'PaymentManager', {
    name: `${prefix.replace(/[^a-zA-Z0-9]/g, '')}Payments`,
    description: 'Payment manager of the x402 agent',
    authorizerType: 'AWS_IAM',
    roleArn: serviceRole.roleArn,
  });
}

export interface AgentStackProps extends StackProps {
  readonly gatewayUrl: string;
}

/** The agent on AgentCore Runtime (arm64 image), its Memory, images bucket and state table. */
export class AgentStack extends Stack {
  readonly runtime: agentcore.Runtime;

  constructor(scope: Construct, id: string, config: DeployConfig, props: AgentStackProps) {
    super(scope, id, props);

    const images = privateBucket(this, 'Images', config.imageExpiryDays);
    const memory = new agentcore.Memory(this, 'Memory', {
      memoryName: `${config.prefix.replace(/[^a-zA-Z0-9_]/g, '_')}_memory`,
      description: 'Short-term memory (conversation events) of the x402 agent',
      expirationDuration: Duration.days(30),
    });

    // Who may spend: session owners and the per-UTC-day spending counters
    // (per user, per wallet), shared by every runtime microVM. Money state,
    // so point-in-time recovery as for the gateway's payments table.
    const state = ttlTable(this, 'AgentState', AGENT_STATE_KEY, { pointInTimeRecovery: true });

    const artifact = agentcore.AgentRuntimeArtifact.fromAsset(config.agentContextDir, {
      platform: Platform.LINUX_ARM64,
      file: 'Dockerfile',
      exclude: AGENT_ASSET_EXCLUDES,
    });

    const environment: Record<string, string> = {
      // AgentCore reaches the container on 0.0.0.0:8080 (the agent's own
      // default host is 127.0.0.1; the Dockerfile also sets both).
      AGENT_HOST: '0.0.0.0',
      AGENT_PORT: '8080',
      NETWORK: config.network,
      GATEWAY_URL: props.gatewayUrl,
      SELLER_WALLET: config.sellerWallet,
      SIGNER: config.signer,
      SESSION_BUDGET_USDC: config.sessionBudgetUsdc,
      AUTO_APPROVE_MAX_USDC: config.autoApproveMaxUsdc,
      USER_DAILY_CAP_USDC: config.userDailyCapUsdc,
      WALLET_DAILY_CAP_USDC: config.walletDailyCapUsdc,
      QUOTE_TTL_SECONDS: String(config.quoteTtlSeconds),
      AGENT_STATE_TABLE: state.tableName,
      MODEL_PROVIDER: 'bedrock',
      MODEL_ID: config.modelId,
      BEDROCK_AGENTCORE_MEMORY_ID: memory.memoryId,
      IMAGES_BUCKET: images.bucketName,
      IMAGES_PREFIX: config.imagesPrefix,
      PRESIGN_EXPIRY_SECONDS: String(config.presignExpirySeconds),
      RUST_LOG: 'info',
      ...(config.rpcUrl ? { RPC_URL: config.rpcUrl } : {}),
      ...(config.usdcContract ? { USDC_CONTRACT: config.usdcContract } : {}),
      ...(config.signer === 'cdp' || config.signer === 'cdp-export'
        ? { CDP_ACCOUNT_NAME: config.cdpAccountName, CDP_API_KEY_ID: config.cdpApiKeyId ?? '' }
        : {}),
      ...(config.kmsKeyArn ? { KMS_KEY_ID: config.kmsKeyArn } : {}),
    };

    // AgentCore Payments: the manager (created here or given), never a secret.
    const paymentManagerArn = config.payments.create
      ? paymentManager(this, config.prefix).attrPaymentManagerArn
      : config.payments.arn;
    if (config.signer === 'agentcore') {
      Object.assign(environment, {
        AGENTCORE_PAYMENT_MANAGER_ARN: paymentManagerArn as string,
        AGENTCORE_PAYMENT_CONNECTOR_ID: config.payments.connectorId as string,
        AGENTCORE_PAYMENT_INSTRUMENT_ID: config.payments.instrumentId as string,
      });
    }

    // Signer material, by reference: the container resolves the ARNs at start.
    const refs =
      config.signer === 'cdp' || config.signer === 'cdp-export'
        ? [
            secretRef(this, 'CdpApiKeySecret', config.secrets.cdpApiKeySecret, 'CDP_API_KEY'),
            secretRef(this, 'CdpWalletSecret', config.secrets.cdpWalletSecret, 'CDP_WALLET'),
          ]
        : config.signer === 'local'
          ? [secretRef(this, 'BuyerPrivateKey', config.secrets.buyerPrivateKey, 'BUYER_PRIVATE_KEY')]
          : [];
    const secrets = refs.map((r) => r.secret);
    for (const r of refs) Object.assign(environment, r.env);

    this.runtime = new agentcore.Runtime(this, 'Runtime', {
      runtimeName: `${config.prefix.replace(/[^a-zA-Z0-9_]/g, '_')}_agent`,
      description: 'x402 paying agent (Rust)',
      agentRuntimeArtifact: artifact,
      environmentVariables: environment,
    });
    const role = this.runtime.role;

    // Converse / ConverseStream on the configured model only.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'InvokeConfiguredModel',
        actions: ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'],
        resources: modelResourceArns(config.modelId, this.region, this.account, this.partition),
      }),
    );
    // Conversation events in this Memory only.
    memory.grantWrite(role);
    memory.grantReadShortTermMemory(role);
    // Images: put and get (presigned URLs are signed by this role) under the prefix.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ImagesPrefix',
        actions: ['s3:PutObject', 's3:GetObject'],
        resources: [images.arnForObjects(`${config.imagesPrefix}*`)],
      }),
    );
    // Session owners and daily-cap counters: this table only, these calls only.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AgentState',
        actions: AGENT_STATE_ACTIONS,
        resources: [state.tableArn],
      }),
    );
    for (const secret of secrets) secret.grantRead(role);
    if (config.signer === 'kms' && config.kmsKeyArn) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'KmsSigner',
          actions: ['kms:Sign', 'kms:GetPublicKey'],
          resources: [config.kmsKeyArn],
        }),
      );
    }

    if (config.signer === 'agentcore' && paymentManagerArn) {
      // Exactly the data-plane calls the agent makes, on this manager only.
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'AgentCorePayments',
          actions: AGENTCORE_PAYMENT_ACTIONS,
          resources: [paymentManagerArn],
        }),
      );
    }

    const baseline =
      'Baseline of the AgentCore Runtime L2 execution role (logs under /aws/bedrock-agentcore/runtimes, X-Ray and CloudWatch metrics which have no resource scoping, workload identity, ECR auth token).';
    const region = nagRegion(this);
    const account = nagAccount(this);
    for (const finding of [
      `Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/bedrock-agentcore/runtimes/*`,
      `Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:/aws/bedrock-agentcore/runtimes/*:log-stream:*`,
      `Resource::arn:<AWS::Partition>:logs:${region}:${account}:log-group:*`,
      `Resource::arn:<AWS::Partition>:bedrock-agentcore:${region}:${account}:workload-identity-directory/default/workload-identity/*`,
      'Resource::*',
    ]) {
      ack(role, `AwsSolutions-IAM5[${finding}]`, baseline);
    }
    for (const arn of modelResourceArns(config.modelId, region, account, '<AWS::Partition>')) {
      if (arn.includes('*')) {
        ack(
          role,
          `AwsSolutions-IAM5[Resource::${arn}]`,
          'A cross-region inference profile routes to the same foundation model in several regions; the model id is fixed.',
        );
      }
    }
    ack(role, objectsFinding(images, `${config.imagesPrefix}*`), 'Objects under the agent\'s images prefix only.');

    if (paymentManagerArn) new CfnOutput(this, 'PaymentManagerArn', { value: paymentManagerArn });
    new CfnOutput(this, 'AgentRuntimeArn', { value: this.runtime.agentRuntimeArn });
    new CfnOutput(this, 'MemoryId', { value: memory.memoryId });
    new CfnOutput(this, 'ImagesBucket', { value: images.bucketName });
    new CfnOutput(this, 'AgentStateTable', { value: state.tableName });
  }
}
