import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { DeployConfig, modelResourceArns } from './config';
import { privateBucket, rustFunction, secretRef, ttlTable } from './common';
import { ack, nagAccount, nagRegion, objectsFinding } from './nag';

/** Partition key of the payments table (replay guard + payment state). */
export const PAYMENTS_KEY = 'pk';

/** The x402 seller: HTTP API -> Rust gateway Lambda, payments table, results bucket. */
export class GatewayStack extends Stack {
  readonly url: string;

  constructor(scope: Construct, id: string, config: DeployConfig, props?: StackProps) {
    super(scope, id, props);

    const payments = ttlTable(this, 'Payments', PAYMENTS_KEY, { pointInTimeRecovery: true });
    const results = privateBucket(this, 'Results', config.imageExpiryDays);

    const fn = rustFunction(this, 'Gateway', {
      codeDir: config.gatewayCodeDir,
      // Nova Canvas plus settlement; HTTP API integrations stop at 30 s.
      timeout: Duration.seconds(29),
      memoryMb: 512,
      environment: {
        NETWORK: config.network,
        SELLER_WALLET: config.sellerWallet,
        FACILITATOR_URL: config.facilitatorUrl,
        GENERATION_BACKEND: 'bedrock',
        NOVA_CANVAS_MODEL_ID: config.novaCanvasModelId,
        NOVA_LITE_MODEL_ID: config.novaLiteModelId,
        PAYMENTS_TABLE: payments.tableName,
        RESULTS_BUCKET: results.bucketName,
        MAX_TIMEOUT_SECONDS: '60',
        // Inside the 29 s Lambda limit: generation, then verify and settle.
        GENERATION_TIMEOUT_SECONDS: '20',
        FACILITATOR_TIMEOUT_SECONDS: '8',
        // A claim whose invocation died frees after this (> the Lambda timeout).
        PAYMENT_LEASE_SECONDS: '60',
        // A settled payment stays redeemable as long as its content is kept.
        PAYMENT_RETENTION_DAYS: String(config.imageExpiryDays),
        ...(config.usdcContract ? { USDC_CONTRACT: config.usdcContract } : {}),
        ...(config.rpcUrl ? { RPC_URL: config.rpcUrl } : {}),
      },
    });
    if (config.gatewayUsesCdp) {
      const ref = secretRef(this, 'CdpApiKeySecret', config.secrets.cdpApiKeySecret, 'CDP_API_KEY');
      ref.secret.grantRead(fn);
      for (const [k, v] of Object.entries(ref.env)) fn.addEnvironment(k, v);
      if (config.cdpApiKeyId) fn.addEnvironment('CDP_API_KEY_ID', config.cdpApiKeyId);
    }
    payments.grantReadWriteData(fn);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'ResultsObjects',
        actions: ['s3:PutObject', 's3:GetObject'],
        resources: [results.arnForObjects('*')],
      }),
    );
    ack(fn, objectsFinding(results, '*'), 'The results bucket is dedicated to the gateway: it reads and writes its own objects only.');
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        // InvokeModel covers Converse; CountTokens prices nova-llm requests.
        actions: ['bedrock:InvokeModel', 'bedrock:CountTokens'],
        resources: [config.novaCanvasModelId, config.novaLiteModelId].flatMap((m) =>
          modelResourceArns(m, this.region, this.account, this.partition),
        ),
      }),
    );

    for (const m of [config.novaCanvasModelId, config.novaLiteModelId]) {
      for (const arn of modelResourceArns(m, nagRegion(this), nagAccount(this), '<AWS::Partition>')) {
        if (arn.includes('*')) {
          ack(
            fn,
            `AwsSolutions-IAM5[Resource::${arn}]`,
            'A cross-region inference profile routes to the same foundation model in several regions; the model id is fixed.',
          );
        }
      }
    }

    const api = new apigwv2.HttpApi(this, 'Api', {
      description: 'x402 seller gateway',
      defaultIntegration: new HttpLambdaIntegration('GatewayIntegration', fn),
    });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const stage = api.defaultStage!.node.defaultChild as apigwv2.CfnStage;
    stage.accessLogSettings = {
      destinationArn: accessLogs.logGroupArn,
      format: JSON.stringify({
        requestId: '$context.requestId',
        ip: '$context.identity.sourceIp',
        method: '$context.httpMethod',
        path: '$context.path',
        status: '$context.status',
        latency: '$context.responseLatency',
        error: '$context.integrationErrorMessage',
      }),
    };

    ack(
      api,
      'AwsSolutions-APIG4',
      'x402 seller: payment is the authorization. Unpaid requests get 402 with the price; paid ones carry a signed, single-use payment that the facilitator verifies.',
    );

    this.url = api.apiEndpoint;
    new CfnOutput(this, 'GatewayUrl', { value: api.apiEndpoint, description: 'x402 seller gateway URL' });
    new CfnOutput(this, 'PaymentsTable', { value: payments.tableName });
    new CfnOutput(this, 'ResultsBucket', { value: results.bucketName });
  }
}
