import { CfnOutput, CfnResource, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ChatAuth } from './chat-auth';
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
 * Browser chat: WebSocket API (Cognito-signed-in users only, checked at
 * `$connect` by the authorizer) -> Rust chat Lambda -> InvokeAgentRuntime on
 * behalf of that user.
 */
export class ChatStack extends Stack {
  readonly auth: ChatAuth;

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

    const auth = new ChatAuth(this, 'Auth', {
      codeDir: config.authorizerCodeDir,
      callbackUrls: config.chatCallbackUrls,
      domainPrefix: config.cognitoDomainPrefix,
    });
    this.auth = auth;

    const integration = new WebSocketLambdaIntegration('ChatIntegration', fn);
    const api = new apigwv2.WebSocketApi(this, 'Api', {
      description: 'x402 agent chat',
      connectRouteOptions: { integration, authorizer: auth.authorizer },
      disconnectRouteOptions: { integration },
      defaultRouteOptions: { integration },
    });
    const stage = new apigwv2.WebSocketStage(this, 'Stage', {
      webSocketApi: api,
      stageName: STAGE_NAME,
      autoDeploy: true,
      throttle: { rateLimit: 20, burstLimit: 40 },
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
  }
}
