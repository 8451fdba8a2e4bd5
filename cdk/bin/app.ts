#!/usr/bin/env node
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';
import { loadConfig } from '../lib/config';

const app = new App();
// build/bin/app.js -> repo root
const repoRoot = path.resolve(__dirname, '..', '..', '..');
const config = loadConfig((k) => app.node.tryGetContext(k), (k) => process.env[k], repoRoot);
for (const dir of [config.gatewayCodeDir, config.chatCodeDir, config.authorizerCodeDir]) {
  if (!fs.existsSync(path.join(dir, 'bootstrap'))) {
    throw new Error(`${dir}/bootstrap not found: build the Lambdas first (scripts/deploy.sh does)`);
  }
}
buildApp(app, config, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
