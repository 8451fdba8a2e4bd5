/**
 * Offline infrastructure tests: synthesize the whole app (no Docker, no AWS
 * account; the Lambda code dirs are placeholders) with the cdk-nag
 * AwsSolutions plugin, then assert on the templates and the asset manifests.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AGENT_STATE_ACTIONS } from '../lib/agent-stack';
import { buildApp } from '../lib/app';
import { DeployConfig, loadConfig, modelResourceArns } from '../lib/config';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const CDK_JSON = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'cdk.json'), 'utf8'));
const ENV = { account: '123456789012', region: 'us-west-2' };
const KMS_KEY = 'arn:aws:kms:us-west-2:123456789012:key/11111111-2222-3333-4444-555555555555';

/** Values a developer's shell might hold; none may reach a template. */
const SECRET_VALUES = {
  BUYER_PRIVATE_KEY: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  CDP_API_KEY_SECRET: 'cdp-api-key-secret-SENTINEL-9f8e7d6c',
  CDP_WALLET_SECRET: 'cdp-wallet-secret-SENTINEL-1a2b3c4d',
};

/** Non-secret settings a deployment needs. */
const PLAIN_ENV = {
  NETWORK: 'base-sepolia',
  SELLER_WALLET: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  CDP_API_KEY_ID: 'organizations/org-id/apiKeys/key-id',
};

interface Synth {
  config: DeployConfig;
  outdir: string;
  templates: Record<'gateway' | 'agent' | 'chat', Template>;
  raw: Record<'gateway' | 'agent' | 'chat', string>;
}

let scratch: string;

function synth(context: Record<string, string>): Synth {
  const outdir = fs.mkdtempSync(path.join(scratch, 'cdk.out-'));
  const app = new App({ outdir, context: { ...CDK_JSON.context, ...context } });
  const env = (k: string) => ({ ...SECRET_VALUES, ...PLAIN_ENV })[k as keyof typeof SECRET_VALUES];
  const config = loadConfig((k) => app.node.tryGetContext(k), env, REPO_ROOT);
  const stacks = buildApp(app, config, { env: ENV });
  // Throws if cdk-nag reports any unacknowledged finding; say which.
  let assembly;
  try {
    assembly = app.synth();
  } catch (e) {
    const report = path.join(outdir, 'validation-report.json');
    if (!fs.existsSync(report)) throw e;
    const findings = JSON.parse(fs.readFileSync(report, 'utf8'))
      .pluginReports.flatMap((r: any) => r.violations ?? [])
      .map((v: any) => `${v.ruleName} ${JSON.stringify(v.violatingResources ?? '')}`);
    throw new Error(`cdk-nag findings not acknowledged:\n${findings.join('\n')}\n(${report})`);
  }
  const pick = (id: string) => assembly.getStackArtifact(id).template;
  const t = {
    gateway: pick(stacks.gateway.artifactId),
    agent: pick(stacks.agent.artifactId),
    chat: pick(stacks.chat.artifactId),
  };
  return {
    config,
    outdir,
    templates: {
      gateway: Template.fromJSON(t.gateway),
      agent: Template.fromJSON(t.agent),
      chat: Template.fromJSON(t.chat),
    },
    raw: { gateway: JSON.stringify(t.gateway), agent: JSON.stringify(t.agent), chat: JSON.stringify(t.chat) },
  };
}

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

function statements(template: Template): Statement[] {
  const out: Statement[] = [];
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::Role']) {
    for (const res of Object.values(template.findResources(type))) {
      const props = (res as { Properties: Record<string, unknown> }).Properties;
      const docs = type === 'AWS::IAM::Policy' ? [props.PolicyDocument] : ((props.Policies as { PolicyDocument: unknown }[]) ?? []).map((p) => p.PolicyDocument);
      for (const doc of docs) out.push(...((doc as { Statement: Statement[] }).Statement ?? []));
    }
  }
  return out;
}

/**
 * A CloudFormation value as one comparable string: `Ref` -> `${Id}`,
 * `Fn::GetAtt` -> `${Id.Attr}`, `Fn::Join` -> the joined parts, other
 * functions -> `${Fn(args)}`.
 */
function render(v: unknown): string {
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  const o = v as Record<string, any>;
  if ('Ref' in o) return `\${${o.Ref}}`;
  if ('Fn::GetAtt' in o) return `\${${o['Fn::GetAtt'].join('.')}}`;
  if ('Fn::Join' in o) return o['Fn::Join'][1].map(render).join(o['Fn::Join'][0]);
  const [fn, args] = Object.entries(o)[0];
  return `\${${fn}(${(Array.isArray(args) ? args : [args]).map(render).join(',')})}`;
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);
const resourcesOf = (s: Statement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]);

function envVarsOf(template: Template): Record<string, unknown>[] {
  const fns = Object.values(template.findResources('AWS::Lambda::Function')).map(
    (r) => ((r as any).Properties.Environment?.Variables ?? {}) as Record<string, unknown>,
  );
  const runtimes = Object.values(template.findResources('AWS::BedrockAgentCore::Runtime')).map(
    (r) => ((r as any).Properties.EnvironmentVariables ?? {}) as Record<string, unknown>,
  );
  return [...fns, ...runtimes];
}

function placeholderCode(name: string): string {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'bootstrap'), '#!/bin/sh\n# placeholder: tests never run it\n');
  return dir;
}

let cdp: Synth;
let kms: Synth;
let local: Synth;

before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'x402-cdk-test-'));
  const code = {
    gatewayCodeDir: placeholderCode('gateway'),
    chatCodeDir: placeholderCode('chat'),
    authorizerCodeDir: placeholderCode('authorizer'),
  };
  cdp = synth({ ...code, signer: 'cdp', gatewayUsesCdp: 'true' });
  kms = synth({
    ...code,
    signer: 'kms',
    kmsKeyArn: KMS_KEY,
    modelId: 'anthropic.claude-3-haiku-20240307-v1:0',
    cognitoDomainPrefix: 'my-chat-test',
    userDailyCapUsdc: '2.50',
    walletDailyCapUsdc: '20',
    quoteTtlSeconds: '120',
  });
  local = synth({ ...code, signer: 'local' });
});

after(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('cdk-nag', () => {
  it('reports nothing unacknowledged (synth would have thrown) and writes an empty report', () => {
    for (const s of [cdp, kms, local]) {
      const reportFile = fs.readdirSync(s.outdir).find((f) => f.endsWith('validation-report.json'));
      if (reportFile) {
        const report = JSON.parse(fs.readFileSync(path.join(s.outdir, reportFile), 'utf8'));
        const violations = (report.pluginReports ?? []).flatMap((r: any) => r.violations ?? []);
        assert.deepEqual(violations, []);
      }
    }
  });
});

describe('agent runtime', () => {
  it('runs an arm64 image built from the repo Dockerfile', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(cdp.outdir, `${cdp.config.prefix}Agent.assets.json`), 'utf8'));
    const images = Object.values(manifest.dockerImages ?? {}) as any[];
    assert.equal(images.length, 1);
    assert.equal(images[0].source.platform, 'linux/arm64');
    assert.equal(images[0].source.dockerFile, 'Dockerfile');
    cdp.templates.agent.hasResourceProperties('AWS::BedrockAgentCore::Runtime', {
      AgentRuntimeArtifact: { ContainerConfiguration: { ContainerUri: Match.anyValue() } },
    });
    assert.match(cdp.raw.agent, new RegExp(`:${Object.keys(manifest.dockerImages)[0]}`));
  });

  it('stages a Docker context without target/, node_modules/, .git or cdk/', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(cdp.outdir, `${cdp.config.prefix}Agent.assets.json`), 'utf8'));
    const image = Object.values(manifest.dockerImages)[0] as any;
    const ctx = path.join(cdp.outdir, image.source.directory);
    const top = fs.readdirSync(ctx);
    assert.ok(top.includes('Dockerfile') && top.includes('Cargo.toml') && top.includes('agent'), top.join(','));
    for (const banned of ['target', '.git', 'cdk', '.local', '.venv', '.env']) {
      assert.ok(!top.includes(banned), `${banned} was staged`);
    }
    const walk = (dir: string): string[] =>
      fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? [path.join(dir, e.name), ...walk(path.join(dir, e.name))] : [],
      );
    const nested = walk(ctx).filter((d) => ['node_modules', 'target'].includes(path.basename(d)));
    assert.deepEqual(nested, []);
  });

  it('may call only the configured model (and its inference profile) on Bedrock', () => {
    for (const s of [cdp, kms]) {
      const bedrock = statements(s.templates.agent).filter((st) => actionsOf(st).some((a) => a.startsWith('bedrock:')));
      assert.equal(bedrock.length, 1, JSON.stringify(bedrock));
      assert.deepEqual(actionsOf(bedrock[0]).sort(), ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
      const want = modelResourceArns(s.config.modelId, ENV.region, ENV.account, 'PARTITION');
      const got = resourcesOf(bedrock[0]).map((r) => JSON.stringify(r));
      assert.equal(got.length, want.length);
      for (const arn of want) {
        const [, rest] = arn.split('arn:PARTITION:');
        assert.ok(got.some((g) => g.includes(rest)), `${rest} not in ${got}`);
      }
      assert.ok(!got.some((g) => g === '"*"'));
    }
  });

  it('signs with KMS only when the KMS signer is chosen, and only with that key', () => {
    const kmsStatements = (s: Synth) => statements(s.templates.agent).filter((st) => actionsOf(st).some((a) => a.startsWith('kms:')));
    assert.deepEqual(kmsStatements(cdp), []);
    assert.deepEqual(kmsStatements(local), []);
    const [st, ...rest] = kmsStatements(kms);
    assert.deepEqual(rest, []);
    assert.deepEqual(actionsOf(st).sort(), ['kms:GetPublicKey', 'kms:Sign']);
    assert.deepEqual(resourcesOf(st), [KMS_KEY]);
  });

  it('reaches S3 only for put/get under its images prefix', () => {
    const s3 = statements(cdp.templates.agent).filter((st) => actionsOf(st).some((a) => a.startsWith('s3:')));
    assert.equal(s3.length, 1);
    assert.deepEqual(actionsOf(s3[0]).sort(), ['s3:GetObject', 's3:PutObject']);
    assert.match(JSON.stringify(s3[0].Resource), /\/images\/\*"/);
  });

  it('has Memory event read/write', () => {
    const actions = statements(cdp.templates.agent).flatMap(actionsOf);
    for (const a of ['bedrock-agentcore:CreateEvent', 'bedrock-agentcore:ListEvents', 'bedrock-agentcore:GetEvent']) {
      assert.ok(actions.includes(a), `${a} missing`);
    }
  });
});

describe('chat', () => {
  it('may invoke only this agent runtime', () => {
    const invoke = statements(cdp.templates.chat).filter((st) => actionsOf(st).some((a) => a.startsWith('bedrock-agentcore:')));
    assert.equal(invoke.length, 1);
    // ...ForUser: the chat Lambda passes the signed-in user as runtimeUserId.
    assert.deepEqual(actionsOf(invoke[0]).sort(), [
      'bedrock-agentcore:InvokeAgentRuntime',
      'bedrock-agentcore:InvokeAgentRuntimeForUser',
    ]);
    const resources = JSON.stringify(invoke[0].Resource);
    assert.ok(!resources.includes('"*"'));
    // Both resources are the runtime ARN exported by the agent stack.
    const imports = resources.match(/Fn::ImportValue/g) ?? [];
    assert.equal(imports.length, 2, resources);
    assert.match(resources, /AgentRuntimeArn/);
    assert.match(resources, /\/runtime-endpoint\/DEFAULT/);
  });

  it('may post only to its own WebSocket API', () => {
    const manage = statements(cdp.templates.chat).filter((st) => actionsOf(st).includes('execute-api:ManageConnections'));
    assert.equal(manage.length, 1);
    const api = Object.keys(cdp.templates.chat.findResources('AWS::ApiGatewayV2::Api'))[0];
    assert.match(JSON.stringify(manage[0].Resource), new RegExp(`"Ref":"${api}"`));
    assert.match(JSON.stringify(manage[0].Resource), /\/prod\/POST\/@connections\/\*/);
  });

  it('routes $connect, $disconnect and $default to the chat Lambda', () => {
    for (const route of ['$connect', '$disconnect', '$default']) {
      cdp.templates.chat.hasResourceProperties('AWS::ApiGatewayV2::Route', { RouteKey: route });
    }
    cdp.templates.chat.hasResourceProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Runtime: 'provided.al2023',
      Environment: { Variables: Match.objectLike({ CONNECTIONS_TABLE: Match.anyValue(), AGENT_RUNTIME_ARN: Match.anyValue() }) },
    });
  });
});

describe('chat sign-in', () => {
  const chat = () => cdp.templates.chat;
  const logicalId = (type: string) => {
    const ids = Object.keys(chat().findResources(type));
    assert.equal(ids.length, 1, `${type}: ${ids}`);
    return ids[0];
  };

  it('puts a Lambda REQUEST authorizer reading ?token= on $connect, and only there', () => {
    const authorizerId = logicalId('AWS::ApiGatewayV2::Authorizer');
    chat().hasResourceProperties('AWS::ApiGatewayV2::Route', {
      RouteKey: '$connect',
      AuthorizationType: 'CUSTOM',
      AuthorizerId: { Ref: authorizerId },
    });
    for (const route of ['$default', '$disconnect']) {
      const [r] = Object.values(chat().findResources('AWS::ApiGatewayV2::Route', { Properties: { RouteKey: route } })) as any[];
      assert.ok(!r.Properties.AuthorizerId, `${route} has its own authorizer`);
    }
    const authorizer = (Object.values(chat().findResources('AWS::ApiGatewayV2::Authorizer'))[0] as any).Properties;
    assert.equal(authorizer.AuthorizerType, 'REQUEST');
    assert.deepEqual(authorizer.IdentitySource, ['route.request.querystring.token']);
    assert.equal(authorizer.ApiId.Ref, logicalId('AWS::ApiGatewayV2::Api'));
    // Backed by the authorizer Lambda...
    const fnRefs = JSON.stringify(authorizer.AuthorizerUri).match(/"(\w*Authorizer[0-9A-F]{8})","Arn"/);
    assert.ok(fnRefs, JSON.stringify(authorizer.AuthorizerUri));
    const fn = chat().findResources('AWS::Lambda::Function')[fnRefs[1]] as any;
    assert.ok(fn, `${fnRefs[1]} is not a function of the chat stack`);
    // ...which checks tokens of this stack's pool and app client.
    assert.deepEqual(fn.Properties.Environment.Variables.COGNITO_USER_POOL_ID, { Ref: logicalId('AWS::Cognito::UserPool') });
    assert.deepEqual(fn.Properties.Environment.Variables.COGNITO_CLIENT_ID, {
      Ref: logicalId('AWS::Cognito::UserPoolClient'),
    });
    assert.equal(fn.Properties.Runtime, 'provided.al2023');
    // API Gateway may call it.
    chat().hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'apigateway.amazonaws.com',
      FunctionName: { 'Fn::GetAtt': [fnRefs[1], 'Arn'] },
    });
    // It needs no AWS permissions beyond its logs.
    const role = fn.Properties.Role['Fn::GetAtt'][0];
    const policies = Object.values(chat().findResources('AWS::IAM::Policy')) as any[];
    assert.ok(!policies.some((p) => JSON.stringify(p.Properties.Roles).includes(role)), 'authorizer role has inline policies');
  });

  it('has a browser app client: no secret, SRP and the OAuth code flow, no plain password flow', () => {
    chat().hasResourceProperties('AWS::Cognito::UserPoolClient', {
      GenerateSecret: false,
      AllowedOAuthFlows: ['code'],
      AllowedOAuthFlowsUserPoolClient: true,
      PreventUserExistenceErrors: 'ENABLED',
    });
    const client = (Object.values(chat().findResources('AWS::Cognito::UserPoolClient'))[0] as any).Properties;
    assert.ok(client.ExplicitAuthFlows.includes('ALLOW_USER_SRP_AUTH'));
    assert.ok(!client.ExplicitAuthFlows.includes('ALLOW_USER_PASSWORD_AUTH'));
  });

  it("returns to the configured URLs and to the web chat's own CloudFront URL", () => {
    const client = (Object.values(chat().findResources('AWS::Cognito::UserPoolClient'))[0] as any).Properties;
    const site = `https://\${${logicalId('AWS::CloudFront::Distribution')}.DomainName}/`;
    for (const urls of [client.CallbackURLs, client.LogoutURLs]) {
      assert.deepEqual(urls.map(render), ['http://localhost:8080/', site]);
    }
  });

  it('has a hosted sign-in domain: the configured prefix, else one derived from the stack id', () => {
    const domain = (Object.values(chat().findResources('AWS::Cognito::UserPoolDomain'))[0] as any).Properties;
    assert.equal(render(domain.Domain), 'x402agent-chat-${Fn::Select(4,${Fn::Split(-,${Fn::Select(2,${Fn::Split(/,${AWS::StackId})})})})}');
    kms.templates.chat.hasResourceProperties('AWS::Cognito::UserPoolDomain', { Domain: 'my-chat-test' });
  });

  it('lets only administrators create users', () => {
    chat().hasResourceProperties('AWS::Cognito::UserPool', {
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
    });
    chat().hasOutput('UserPoolId', {});
    chat().hasOutput('UserPoolClientId', {});
  });
});

describe('web chat site', () => {
  const chat = () => cdp.templates.chat;
  const only = (type: string): [string, any] => {
    const all = Object.entries(chat().findResources(type));
    assert.equal(all.length, 1, `${type}: ${all.map(([id]) => id)}`);
    return all[0] as [string, any];
  };
  const [bucketId, bucket] = [0, 1].map((i) => () => only('AWS::S3::Bucket')[i]) as [() => string, () => any];
  const distribution = () => only('AWS::CloudFront::Distribution');
  const deployments = () =>
    Object.values(chat().findResources('Custom::CDKBucketDeployment')).map((r: any) => r.Properties);
  /** The staged directory of an asset zip a deployment names. */
  const stagedDir = (key: string) => {
    const manifest = JSON.parse(fs.readFileSync(path.join(cdp.outdir, `${cdp.config.prefix}Chat.assets.json`), 'utf8'));
    return path.join(cdp.outdir, manifest.files[key.replace(/\.zip$/, '')].source.path);
  };

  it('keeps the page in a private, encrypted, TLS-only bucket without website hosting', () => {
    const b = bucket().Properties;
    assert.deepEqual(b.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    assert.ok(b.BucketEncryption);
    assert.equal(b.WebsiteConfiguration, undefined);
    assert.deepEqual(b.OwnershipControls, { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
  });

  it('lets only this distribution read it: origin access control and a SourceArn-bound bucket policy', () => {
    const [distId, dist] = distribution();
    const [oacId, oac] = only('AWS::CloudFront::OriginAccessControl');
    assert.deepEqual(oac.Properties.OriginAccessControlConfig.OriginAccessControlOriginType, 's3');
    assert.equal(oac.Properties.OriginAccessControlConfig.SigningBehavior, 'always');
    const [origin, ...more] = dist.Properties.DistributionConfig.Origins;
    assert.deepEqual(more, []);
    assert.deepEqual(origin.DomainName, { 'Fn::GetAtt': [bucketId(), 'RegionalDomainName'] });
    assert.deepEqual(origin.OriginAccessControlId, { 'Fn::GetAtt': [oacId, 'Id'] });
    assert.ok(!origin.S3OriginConfig?.OriginAccessIdentity, 'no legacy origin access identity');
    chat().resourceCountIs('AWS::CloudFront::CloudFrontOriginAccessIdentity', 0);

    const [, policy] = only('AWS::S3::BucketPolicy');
    assert.deepEqual(policy.Properties.Bucket, { Ref: bucketId() });
    const statements = policy.Properties.PolicyDocument.Statement as any[];
    const reads = statements.filter(
      (st) => st.Effect === 'Allow' && actionsOf(st).some((a: string) => /^s3:(\*|Get\*|GetObject)/.test(a)),
    );
    assert.equal(reads.length, 1, JSON.stringify(reads));
    assert.deepEqual(reads[0].Principal, { Service: 'cloudfront.amazonaws.com' });
    assert.deepEqual(actionsOf(reads[0]), ['s3:GetObject']);
    assert.equal(
      render(reads[0].Condition.StringEquals['AWS:SourceArn']),
      `arn:\${AWS::Partition}:cloudfront::\${AWS::AccountId}:distribution/\${${distId}}`,
    );
    // Nobody else is allowed anything by name of everyone.
    assert.ok(!statements.some((st) => st.Effect === 'Allow' && JSON.stringify(st.Principal).includes('"*"')));
    assert.ok(
      statements.some((st) => st.Effect === 'Deny' && st.Condition?.Bool?.['aws:SecureTransport'] === 'false'),
      'TLS only',
    );
  });

  it('serves HTTPS only, index.html at the root, with the security headers', () => {
    const config = distribution()[1].Properties.DistributionConfig;
    assert.equal(config.DefaultRootObject, 'index.html');
    for (const behavior of [config.DefaultCacheBehavior, ...(config.CacheBehaviors ?? [])]) {
      assert.ok(['redirect-to-https', 'https-only'].includes(behavior.ViewerProtocolPolicy), behavior.ViewerProtocolPolicy);
      assert.deepEqual(behavior.AllowedMethods, ['GET', 'HEAD']);
    }
    const [headersId, headers] = only('AWS::CloudFront::ResponseHeadersPolicy');
    assert.deepEqual(config.DefaultCacheBehavior.ResponseHeadersPolicyId, { Ref: headersId });
    const sec = headers.Properties.ResponseHeadersPolicyConfig.SecurityHeadersConfig;
    assert.ok(sec.StrictTransportSecurity.AccessControlMaxAgeSec >= 31536000);
    assert.equal(sec.FrameOptions.FrameOption, 'DENY');
    assert.equal(sec.ReferrerPolicy.ReferrerPolicy, 'no-referrer');
    assert.ok(sec.ContentTypeOptions.Override);
    const csp = render(sec.ContentSecurityPolicy.ContentSecurityPolicy);
    const directives = new Map<string, string>(
      csp.split(/;\s*/).map((d: string) => [d.split(' ')[0], d.slice(d.indexOf(' ') + 1)] as [string, string]),
    );
    assert.equal(directives.get('default-src'), "'none'");
    assert.equal(directives.get('script-src'), "'self'", 'no inline or remote script');
    assert.equal(directives.get('frame-ancestors'), "'none'");
    // The page talks to its own origin, this WebSocket API and this pool's hosted UI, nothing else.
    const api = Object.keys(chat().findResources('AWS::ApiGatewayV2::Api'))[0];
    const domain = (Object.values(chat().findResources('AWS::Cognito::UserPoolDomain'))[0] as any).Properties.Domain;
    assert.equal(
      directives.get('connect-src'),
      `'self' \${${api}.ApiEndpoint} https://${render(domain)}.auth.${ENV.region}.amazoncognito.com`,
    );
  });

  it('deploys agent/web as is: index.html at the root, the rest under assets/, never tests/', () => {
    const web = path.join(REPO_ROOT, 'agent', 'web');
    const assets = deployments().find((d) => d.DestinationBucketKeyPrefix === 'assets/');
    assert.ok(assets, 'an assets/ deployment');
    assert.deepEqual(render(assets.DestinationBucketName), `\${${bucketId()}}`);
    const staged = assets.SourceObjectKeys.flatMap((k: string) => fs.readdirSync(stagedDir(k))).sort();
    const expected = fs
      .readdirSync(web)
      .filter((f) => f !== 'tests' && f !== 'index.html')
      .sort();
    assert.deepEqual(staged, expected);
    assert.ok(staged.includes('app.js') && staged.includes('aws.js') && staged.includes('style.css'), staged.join(','));

    const page = deployments().find((d) => !d.DestinationBucketKeyPrefix);
    assert.ok(page, 'a root deployment');
    assert.equal(String(page.Prune), 'false', "the root deployment must not prune the assets'");
    const files = page.SourceObjectKeys.map((k: string) => fs.readdirSync(stagedDir(k)).sort());
    assert.deepEqual(files, [['index.html'], ['config.json']]);
    assert.equal(
      fs.readFileSync(path.join(stagedDir(page.SourceObjectKeys[0]), 'index.html'), 'utf8'),
      fs.readFileSync(path.join(web, 'index.html'), 'utf8'),
    );
  });

  it("writes config.json from the stack's outputs, and nothing secret", () => {
    const page = deployments().find((d) => !d.DestinationBucketKeyPrefix);
    const raw = fs.readFileSync(path.join(stagedDir(page.SourceObjectKeys[1]), 'config.json'), 'utf8');
    // CDK puts deploy-time values in as markers and substitutes them on upload.
    const markers = page.SourceMarkers[1] as Record<string, unknown>;
    const config = JSON.parse(raw, (_k, v) =>
      typeof v === 'string' ? v.replace(/<<marker:0xbaba:\d+>>/g, (m) => render(markers[m])) : v,
    );
    const output = (name: string) => render((chat().toJSON().Outputs as any)[name].Value);
    assert.deepEqual(config, {
      region: ENV.region,
      webSocketUrl: output('WebSocketUrl'),
      userPoolId: output('UserPoolId'),
      userPoolClientId: output('UserPoolClientId'),
      cognitoDomain: output('CognitoDomain'),
      scopes: 'openid email',
    });
    assert.match(config.webSocketUrl, /^wss:\/\/\$\{Api\w+\}\.execute-api\./);
    assert.ok(!/secret|password|private/i.test(raw));
  });
});

describe('gateway', () => {
  it('runs the Rust gateway on arm64 behind an HTTP API', () => {
    cdp.templates.gateway.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    cdp.templates.gateway.hasResourceProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Environment: {
        Variables: Match.objectLike({ PAYMENTS_TABLE: Match.anyValue(), RESULTS_BUCKET: Match.anyValue(), GENERATION_BACKEND: 'bedrock' }),
      },
    });
  });

  it('keeps payment records as long as the results bucket keeps their content', () => {
    const fns = Object.values(cdp.templates.gateway.findResources('AWS::Lambda::Function')) as any[];
    const days = fns
      .map((f) => f.Properties.Environment?.Variables?.PAYMENT_RETENTION_DAYS)
      .find((d) => d !== undefined);
    const buckets = Object.values(cdp.templates.gateway.findResources('AWS::S3::Bucket')) as any[];
    const expiry = Math.max(
      ...buckets.flatMap((b) => b.Properties.LifecycleConfiguration.Rules.map((r: any) => r.ExpirationInDays ?? 0)),
    );
    assert.ok(expiry > 0);
    assert.ok(Number(days) >= expiry, `retention ${days} days < results expiry ${expiry} days`);
  });
});

describe('storage', () => {
  it('buckets block public access, are encrypted, expire objects and enforce TLS', () => {
    for (const t of [cdp.templates.gateway, cdp.templates.agent]) {
      const buckets = t.findResources('AWS::S3::Bucket');
      assert.ok(Object.keys(buckets).length >= 1);
      for (const [id, b] of Object.entries(buckets) as [string, any][]) {
        assert.deepEqual(b.Properties.PublicAccessBlockConfiguration, {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
        assert.ok(b.Properties.BucketEncryption, `${id} unencrypted`);
        assert.ok(b.Properties.LifecycleConfiguration.Rules.some((r: any) => r.ExpirationInDays > 0));
        t.hasResourceProperties('AWS::S3::BucketPolicy', {
          Bucket: { Ref: id },
          PolicyDocument: {
            Statement: Match.arrayWith([
              Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
            ]),
          },
        });
      }
    }
  });

  it('every table has a TTL', () => {
    let tables = 0;
    for (const t of Object.values(cdp.templates)) {
      for (const table of Object.values(t.findResources('AWS::DynamoDB::Table')) as any[]) {
        tables += 1;
        assert.deepEqual(table.Properties.TimeToLiveSpecification, { AttributeName: 'expiresAt', Enabled: true });
      }
    }
    assert.equal(tables, 3);
  });
});

describe('agent state (who may spend)', () => {
  const runtimeVars = (s: Synth) =>
    (Object.values(s.templates.agent.findResources('AWS::BedrockAgentCore::Runtime'))[0] as any).Properties
      .EnvironmentVariables as Record<string, unknown>;
  const stateTable = (s: Synth) => {
    const tables = Object.entries(s.templates.agent.findResources('AWS::DynamoDB::Table')) as [string, any][];
    assert.equal(tables.length, 1, tables.map(([id]) => id).join(','));
    return tables[0];
  };

  it('is an on-demand table keyed by pk (S), with TTL on expiresAt, PITR and encryption', () => {
    const [, table] = stateTable(cdp);
    assert.deepEqual(table.Properties.KeySchema, [{ AttributeName: 'pk', KeyType: 'HASH' }]);
    assert.deepEqual(table.Properties.AttributeDefinitions, [{ AttributeName: 'pk', AttributeType: 'S' }]);
    assert.deepEqual(table.Properties.TimeToLiveSpecification, { AttributeName: 'expiresAt', Enabled: true });
    assert.equal(table.Properties.BillingMode, 'PAY_PER_REQUEST');
    assert.deepEqual(table.Properties.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    assert.deepEqual(table.Properties.SSESpecification, { SSEEnabled: true });
    // Removed with the stack, like the gateway's payments table.
    const [payments] = Object.values(cdp.templates.gateway.findResources('AWS::DynamoDB::Table')) as any[];
    assert.equal(table.DeletionPolicy, payments.DeletionPolicy);
    cdp.templates.agent.hasOutput('AgentStateTable', { Value: { Ref: stateTable(cdp)[0] } });
  });

  it('is named to the runtime as AGENT_STATE_TABLE', () => {
    for (const s of [cdp, kms, local]) {
      assert.deepEqual(runtimeVars(s).AGENT_STATE_TABLE, { Ref: stateTable(s)[0] });
    }
  });

  it('the runtime may only get, put, update and delete items of that table', () => {
    for (const s of [cdp, kms, local]) {
      const dynamo = statements(s.templates.agent).filter((st) => actionsOf(st).some((a) => a.startsWith('dynamodb:')));
      assert.equal(dynamo.length, 1, JSON.stringify(dynamo));
      assert.deepEqual(actionsOf(dynamo[0]).sort(), [
        'dynamodb:DeleteItem',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
      ]);
      assert.deepEqual([...AGENT_STATE_ACTIONS].sort(), actionsOf(dynamo[0]).sort());
      assert.deepEqual(resourcesOf(dynamo[0]), [{ 'Fn::GetAtt': [stateTable(s)[0], 'Arn'] }]);
      assert.ok(!JSON.stringify(dynamo[0]).includes('*'), JSON.stringify(dynamo[0]));
    }
  });

  it('passes the daily caps and quote TTL: the agent\'s defaults, or the configured values', () => {
    const defaults = runtimeVars(cdp);
    assert.equal(defaults.USER_DAILY_CAP_USDC, '10.00');
    assert.equal(defaults.WALLET_DAILY_CAP_USDC, '100.00');
    assert.equal(defaults.QUOTE_TTL_SECONDS, '300');
    const configured = runtimeVars(kms);
    assert.equal(configured.USER_DAILY_CAP_USDC, '2.50');
    assert.equal(configured.WALLET_DAILY_CAP_USDC, '20');
    assert.equal(configured.QUOTE_TTL_SECONDS, '120');
  });

  it('binds the runtime container on 0.0.0.0 (the agent\'s own default is loopback)', () => {
    assert.equal(runtimeVars(cdp).AGENT_HOST, '0.0.0.0');
    assert.equal(runtimeVars(cdp).AGENT_PORT, '8080');
  });

  it('reads the caps from the environment, context first, and refuses values the agent would', () => {
    const ctx = (c: Record<string, string>) => (k: string) => c[k];
    const env = (e: Record<string, string>) => (k: string) => e[k];
    const fromEnv = loadConfig(
      ctx({}),
      env({ ...PLAIN_ENV, USER_DAILY_CAP_USDC: '5', WALLET_DAILY_CAP_USDC: '$50.5', QUOTE_TTL_SECONDS: '60' }),
      REPO_ROOT,
    );
    assert.deepEqual([fromEnv.userDailyCapUsdc, fromEnv.walletDailyCapUsdc, fromEnv.quoteTtlSeconds], ['5', '$50.5', 60]);
    const contextWins = loadConfig(ctx({ userDailyCapUsdc: '1.25' }), env({ ...PLAIN_ENV, USER_DAILY_CAP_USDC: '5' }), REPO_ROOT);
    assert.equal(contextWins.userDailyCapUsdc, '1.25');
    for (const [key, value] of [
      ['USER_DAILY_CAP_USDC', 'ten'],
      ['USER_DAILY_CAP_USDC', '1.0000001'],
      ['WALLET_DAILY_CAP_USDC', '-1'],
      ['WALLET_DAILY_CAP_USDC', '.'],
      ['SESSION_BUDGET_USDC', '1,00'],
      ['QUOTE_TTL_SECONDS', '0'],
      ['QUOTE_TTL_SECONDS', '1.5'],
      ['QUOTE_TTL_SECONDS', 'five'],
    ]) {
      assert.throws(() => loadConfig(ctx({}), env({ ...PLAIN_ENV, [key]: value }), REPO_ROOT), new RegExp(key), `${key}=${value}`);
    }
  });
});

describe('secrets', () => {
  it('never appear in a template, only as Secrets Manager references', () => {
    for (const s of [cdp, kms, local]) {
      for (const raw of Object.values(s.raw)) {
        for (const value of Object.values(SECRET_VALUES)) assert.ok(!raw.includes(value), 'secret value in template');
      }
      for (const vars of [...envVarsOf(s.templates.gateway), ...envVarsOf(s.templates.agent), ...envVarsOf(s.templates.chat)]) {
        for (const name of Object.keys(SECRET_VALUES)) assert.ok(!(name in vars), `${name} set as a plain env var`);
      }
    }
    const runtimeVars = (s: Synth) =>
      (Object.values(s.templates.agent.findResources('AWS::BedrockAgentCore::Runtime'))[0] as any).Properties
        .EnvironmentVariables as Record<string, unknown>;
    const agentVars = runtimeVars(cdp);
    assert.match(JSON.stringify(agentVars.CDP_API_KEY_SECRET_ARN), /secretsmanager/);
    assert.match(JSON.stringify(agentVars.CDP_WALLET_SECRET_ARN), /secretsmanager/);
    assert.match(JSON.stringify(runtimeVars(local).BUYER_PRIVATE_KEY_SECRET_ARN), /secretsmanager/);
    assert.ok(!('CDP_WALLET_SECRET_ARN' in runtimeVars(local)) && !('BUYER_PRIVATE_KEY_SECRET_ARN' in agentVars));
  });

  it('the chat stack holds none: a public app client, no secret resources', () => {
    for (const s of [cdp, kms, local]) {
      assert.ok(!/ClientSecret|SecretString|GenerateSecretString/.test(s.raw.chat));
      s.templates.chat.resourceCountIs('AWS::SecretsManager::Secret', 0);
      for (const c of Object.values(s.templates.chat.findResources('AWS::Cognito::UserPoolClient')) as any[]) {
        assert.equal(c.Properties.GenerateSecret, false);
      }
    }
  });
});

describe('configuration the agent refuses to start without', () => {
  const runtimeVars = (s: Synth) =>
    (Object.values(s.templates.agent.findResources('AWS::BedrockAgentCore::Runtime'))[0] as any).Properties
      .EnvironmentVariables as Record<string, unknown>;

  it('passes the seller wallet, and the CDP key id and account for the CDP signers', () => {
    const vars = runtimeVars(cdp);
    assert.equal(vars.SELLER_WALLET, PLAIN_ENV.SELLER_WALLET);
    assert.equal(vars.CDP_API_KEY_ID, PLAIN_ENV.CDP_API_KEY_ID);
    assert.equal(vars.CDP_ACCOUNT_NAME, 'x402-agent');
    assert.ok(!('CDP_API_KEY_ID' in runtimeVars(local)));
  });

  it('refuses to synthesise without a real seller wallet or a CDP key id', () => {
    const ctx = (c: Record<string, string>) => (k: string) => c[k];
    const env = (e: Record<string, string>) => (k: string) => e[k];
    const base = { ...PLAIN_ENV };
    assert.throws(() => loadConfig(ctx({}), env({ ...base, SELLER_WALLET: '' }), REPO_ROOT), /SELLER_WALLET/);
    assert.throws(
      () => loadConfig(ctx({}), env({ ...base, SELLER_WALLET: '0x0000000000000000000000000000000000000000' }), REPO_ROOT),
      /non-zero/,
    );
    assert.throws(() => loadConfig(ctx({}), env({ ...base, CDP_API_KEY_ID: '' }), REPO_ROOT), /CDP_API_KEY_ID/);
    assert.doesNotThrow(() => loadConfig(ctx({ signer: 'local' }), env({ ...base, CDP_API_KEY_ID: '' }), REPO_ROOT));
  });
});

describe('outputs', () => {
  it('exposes what scripts/write-env.sh needs', () => {
    cdp.templates.gateway.hasOutput('GatewayUrl', {});
    cdp.templates.chat.hasOutput('WebSocketUrl', {});
    cdp.templates.agent.hasOutput('AgentRuntimeArn', {});
    cdp.templates.agent.hasOutput('MemoryId', {});
    cdp.templates.agent.hasOutput('ImagesBucket', {});
    cdp.templates.agent.hasOutput('AgentStateTable', {});
    cdp.templates.chat.hasOutput('UserPoolId', {});
    cdp.templates.chat.hasOutput('UserPoolClientId', {});
    cdp.templates.chat.hasOutput('WebChatUrl', {});
    cdp.templates.chat.hasOutput('CognitoDomain', {});
  });
});
