import { CfnOutput, CfnResource, Duration, Fn, Stack, StackProps } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ChatAuth } from './chat-auth';
import { ChatSite, cognitoDomainUrl } from './chat-site';
import { DeployConfig } from './config';
import { rustFunction, ttlTable } from './common';
import { ack, nagAccount, nagRegion } from './nag';

/** Partition key of the connections table (see chat-lambda/src/connections.rs). */
export const CONNECTIONS_KEY = 'connectionId';
export const STAGE_NAME = 'prod';
/** The runtime endpoint the chat Lambda invokes (AgentCore's default endpoint). */
export const RUNTIME_QUALIFIER = 'DEFAULT';

export interface ChatStackProps extends StackProps {
  readonly agentRuntimeArn: string;
}

/**
 * Browser chat: the web page (S3 + CloudFront) signs the user in with
 * Cognito and opens the WebSocket API (Cognito-signed-in users only, checked
 * at `$connect` by the authorizer) -> Rust chat Lambda -> InvokeAgentRuntime
 * on behalf of that user.
 *
 * The page and the user pool live in one stack because each names the other:
 * the app client's callback URL is the distribution's, and the page's
 * `config.json` names the client. Inside one template there is no cycle
 * (distribution <- client <- config.json); across two stacks there would be.
 */
export class ChatStack extends Stack {
  readonly auth: ChatAuth;
  readonly site: ChatSite;

  constructor(scope: Construct, id: string, config: DeployConfig, props: ChatStackProps) {
    super(scope, id, props);

    const connections = ttlTable(this, 'Connections', CONNECTIONS_KEY, { pointInTimeRecovery: false });
    ack(
      connections,
      'AwsSolutions-DDB3',
      'Connection ids only live as long as a WebSocket (at most 2 hours); nothing to recover.',
    );
    const fn = rustFunction(this, 'Chat', {
      codeDir: config.chatCodeDir,
      // A turn (model + payment + image) streams for minutes; Lambda's maximum.
      timeout: Duration.minutes(15),
      memoryMb: 256,
      environment: {
        CONNECTIONS_TABLE: connections.tableName,
        AGENT_RUNTIME_ARN: props.agentRuntimeArn,
        AGENT_RUNTIME_QUALIFIER: RUNTIME_QUALIFIER,
      },
    });
    // GetItem: the user recorded at $connect, for messages that lack the authorizer context.
    connections.grant(fn, 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem');

    // $connect gets its authorizer below, once the user pool (which needs the
    // page's URL) exists; the page's CSP needs the API's origin first.
    const integration = new WebSocketLambdaIntegration('ChatIntegration', fn);
    const api = new apigwv2.WebSocketApi(this, 'Api', {
      description: 'x402 agent chat',
      disconnectRouteOptions: { integration },
      defaultRouteOptions: { integration },
    });
    const stage = new apigwv2.WebSocketStage(this, 'Stage', {
      webSocketApi: api,
      stageName: STAGE_NAME,
      autoDeploy: true,
      throttle: { rateLimit: 20, burstLimit: 40 },
    });

    const domainPrefix = config.cognitoDomainPrefix ?? defaultDomainPrefix(this, config.prefix);
    const site = new ChatSite(this, 'Site', {
      webDir: config.webDir,
      connectOrigins: [api.apiEndpoint, cognitoDomainUrl(this, domainPrefix)],
    });
    this.site = site;

    const auth = new ChatAuth(this, 'Auth', {
      codeDir: config.authorizerCodeDir,
      callbackUrls: [...config.chatCallbackUrls, site.url],
      domainPrefix,
    });
    this.auth = auth;
    api.addRoute('$connect', { integration, authorizer: auth.authorizer });

    site.deploy({
      region: this.region,
      webSocketUrl: stage.url,
      userPoolId: auth.userPool.userPoolId,
      userPoolClientId: auth.client.userPoolClientId,
      cognitoDomain: auth.domain.baseUrl(),
      scopes: 'openid email',
    });

    // InvokeAgentRuntime on this runtime (and its endpoint) only, on behalf of
    // the signed-in user (runtimeUserId needs InvokeAgentRuntimeForUser).
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'InvokeThisRuntime',
        actions: ['bedrock-agentcore:InvokeAgentRuntime', 'bedrock-agentcore:InvokeAgentRuntimeForUser'],
        resources: [props.agentRuntimeArn, `${props.agentRuntimeArn}/runtime-endpoint/${RUNTIME_QUALIFIER}`],
      }),
    );
    // PostToConnection on this API's stage only.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'PostToThisApi',
        actions: ['execute-api:ManageConnections'],
        resources: [
          this.formatArn({
            service: 'execute-api',
            resource: api.apiId,
            resourceName: `${STAGE_NAME}/POST/@connections/*`,
          }),
        ],
      }),
    );

    const apiRef = this.getLogicalId(api.node.defaultChild as CfnResource);
    ack(
      fn,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:${nagRegion(this)}:${nagAccount(this)}:<${apiRef}>/${STAGE_NAME}/POST/@connections/*]`,
      "PostToConnection on this API's stage only; connection ids are known only at run time.",
    );
    ack(
      api,
      'AwsSolutions-APIG4',
      '$connect has the Cognito token authorizer; WebSocket APIs authorize only at $connect, and $default/$disconnect run on the connection it allowed.',
    );
    ack(
      stage,
      'AwsSolutions-APIG1',
      'WebSocket access logging needs the account-level API Gateway CloudWatch role; the chat Lambda logs every connection and message instead.',
    );

    new CfnOutput(this, 'WebSocketUrl', { value: stage.url, description: 'wss:// URL for the browser chat' });
    new CfnOutput(this, 'ConnectionsTable', { value: connections.tableName });
    new CfnOutput(this, 'UserPoolId', { value: auth.userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: auth.client.userPoolClientId });
    new CfnOutput(this, 'WebChatUrl', { value: site.url, description: 'the web chat page (sign in with a pool user)' });
    new CfnOutput(this, 'CognitoDomain', { value: auth.domain.baseUrl(), description: 'Cognito hosted sign-in' });
  }
}

/**
 * A Cognito domain prefix when none is configured: the page needs the hosted
 * UI to sign in, and prefixes are global per region, so the stack's own id
 * makes it unique (`x402agent-chat-{last 12 hex digits of the stack id}`).
 * Cognito refuses prefixes with `aws`, `amazon` or `cognito` in them.
 */
function defaultDomainPrefix(stack: Stack, prefix: string): string {
  const base = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '').replace(/aws|amazon|cognito/g, '') || 'chat';
  const uuid = Fn.select(2, Fn.split('/', stack.stackId));
  return `${base.slice(0, 30)}-chat-${Fn.select(4, Fn.split('-', uuid))}`;
}
