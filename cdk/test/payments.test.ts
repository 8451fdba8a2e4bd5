/**
 * AgentCore Payments in the agent stack (`signer=agentcore`): the runtime
 * role may call exactly the payment actions, on exactly the payment manager
 * (created by the stack or given), and the runtime gets the manager ARN and
 * the instrument, never a secret. Synthesised with cdk-nag like app.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AGENTCORE_PAYMENT_ACTIONS } from '../lib/agent-stack';
import { buildApp } from '../lib/app';
import { loadConfig } from '../lib/config';

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
const CDK_JSON = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'cdk.json'), 'utf8'));
const ENV = { account: '123456789012', region: 'us-west-2' };
const MANAGER = 'arn:aws:bedrock-agentcore:us-west-2:123456789012:payment-manager/pm-0123456789';
const BASE = {
  signer: 'agentcore',
  sellerWallet: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  paymentConnectorId: 'pc-0123',
  paymentInstrumentId: 'pi-0123',
};
const SECRET_VALUES: Record<string, string> = {
  BUYER_PRIVATE_KEY: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  CDP_API_KEY_SECRET: 'cdp-api-key-secret-SENTINEL-9f8e7d6c',
  CDP_WALLET_SECRET: 'cdp-wallet-secret-SENTINEL-1a2b3c4d',
};

let scratch: string;

function placeholder(name: string): string {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'bootstrap'), '#!/bin/sh\n');
  return dir;
}

/** The agent template; throws on any unacknowledged cdk-nag finding. */
function agentTemplate(context: Record<string, string>): { t: Template; raw: string } {
  const outdir = fs.mkdtempSync(path.join(scratch, 'cdk.out-'));
  const code = {
    gatewayCodeDir: placeholder('gateway'),
    chatCodeDir: placeholder('chat'),
    authorizerCodeDir: placeholder('authorizer'),
  };
  const app = new App({ outdir, context: { ...CDK_JSON.context, ...code, ...context } });
  const config = loadConfig((k) => app.node.tryGetContext(k), (k) => SECRET_VALUES[k], REPO_ROOT);
  const stacks = buildApp(app, config, { env: ENV });
  let assembly;
  try {
    assembly = app.synth();
  } catch (e) {
    const report = path.join(outdir, 'validation-report.json');
    if (!fs.existsSync(report)) throw e;
    throw new Error(`cdk-nag findings: ${fs.readFileSync(report, 'utf8')}`);
  }
  const json = assembly.getStackArtifact(stacks.agent.artifactId).template;
  return { t: Template.fromJSON(json), raw: JSON.stringify(json) };
}

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown };

function statements(t: Template): Statement[] {
  return Object.values(t.findResources('AWS::IAM::Policy')).flatMap(
    (r) => ((r as any).Properties.PolicyDocument.Statement ?? []) as Statement[],
  );
}
const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);
const paymentStatements = (t: Template) =>
  statements(t).filter((s) => list(s.Action).some((a) => /Payment/.test(a)));
const runtimeEnv = (t: Template) =>
  (Object.values(t.findResources('AWS::BedrockAgentCore::Runtime'))[0] as any).Properties.EnvironmentVariables;

before(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'x402-cdk-payments-'));
});
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('AgentCore Payments', () => {
  it('with an existing manager: exactly the payment actions, on that manager only', () => {
    const { t, raw } = agentTemplate({ ...BASE, paymentManagerArn: MANAGER });
    const [st, ...rest] = paymentStatements(t);
    assert.deepEqual(rest, [], 'one statement');
    assert.deepEqual(list(st.Action).sort(), [...AGENTCORE_PAYMENT_ACTIONS].sort());
    assert.deepEqual(list(st.Resource), [MANAGER], 'the manager and nothing wider');
    assert.ok(list(st.Action).every((a) => !a.includes('*')));
    t.resourceCountIs('AWS::BedrockAgentCore::PaymentManager', 0);
    const env = runtimeEnv(t);
    assert.equal(env.SIGNER, 'agentcore');
    assert.equal(env.AGENTCORE_PAYMENT_MANAGER_ARN, MANAGER);
    assert.equal(env.AGENTCORE_PAYMENT_CONNECTOR_ID, 'pc-0123');
    assert.equal(env.AGENTCORE_PAYMENT_INSTRUMENT_ID, 'pi-0123');
    for (const v of Object.values(SECRET_VALUES)) assert.ok(!raw.includes(v), 'no secret in the template');
    assert.ok(!/SECRET_ARN|secretsmanager:GetSecretValue/.test(raw), 'no secret is even referenced');
  });

  it('creates the manager when asked and grants on its ARN only', () => {
    const { t } = agentTemplate({ ...BASE, createPaymentManager: 'true' });
    const managers = t.findResources('AWS::BedrockAgentCore::PaymentManager');
    const [id, ...others] = Object.keys(managers);
    assert.deepEqual(others, []);
    assert.equal((managers[id] as any).Properties.AuthorizerType, 'AWS_IAM');
    const [st, ...rest] = paymentStatements(t);
    assert.deepEqual(rest, []);
    assert.deepEqual(list(st.Resource), [{ 'Fn::GetAtt': [id, 'PaymentManagerArn'] }]);
    assert.deepEqual(runtimeEnv(t).AGENTCORE_PAYMENT_MANAGER_ARN, { 'Fn::GetAtt': [id, 'PaymentManagerArn'] });
  });

  it('grants no payment action to the other signers', () => {
    const { t } = agentTemplate({ ...BASE, signer: 'local', paymentManagerArn: MANAGER });
    assert.deepEqual(paymentStatements(t), []);
    assert.equal(runtimeEnv(t).AGENTCORE_PAYMENT_MANAGER_ARN, undefined);
  });

  it('refuses to synthesise an agentcore signer without manager, connector and instrument', () => {
    const { paymentInstrumentId: _drop, ...noInstrument } = BASE;
    assert.throws(() => agentTemplate({ ...noInstrument, paymentManagerArn: MANAGER }), /paymentInstrumentId/);
    assert.throws(() => agentTemplate(BASE), /payment manager/);
    assert.throws(() => agentTemplate({ ...BASE, paymentManagerArn: 'arn:aws:iam::123456789012:role/x' }), /payment-manager ARN/);
  });
});
