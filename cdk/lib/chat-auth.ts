import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { rustFunction } from './common';
import { ack } from './nag';

/** Query string parameter the browser puts its token in (chat-authorizer's TOKEN_PARAM). */
export const TOKEN_QUERY_PARAM = 'token';

export interface ChatAuthProps {
  /** Directory with chat-authorizer's `bootstrap`. */
  readonly codeDir: string;
  /** Where the OAuth code flow may return (the web chat's URLs). */
  readonly callbackUrls: string[];
  /** Hosted sign-in domain prefix (`{prefix}.auth.{region}.amazoncognito.com`): the web chat's sign-in page. */
  readonly domainPrefix: string;
}

/**
 * Who may use the chat: an Amazon Cognito user pool (users are created by an
 * administrator; no self sign-up), a browser app client (public: no secret;
 * SRP sign-in and the OAuth authorization-code flow with PKCE), and a Lambda
 * REQUEST authorizer for the WebSocket `$connect` route that verifies the
 * pool's tokens (chat-authorizer). API Gateway WebSocket APIs take only
 * Lambda or IAM authorizers, and only on `$connect`; browsers cannot set
 * headers on a WebSocket, so the token comes as `?token=...`.
 */
export class ChatAuth extends Construct {
  readonly userPool: cognito.UserPool;
  readonly client: cognito.UserPoolClient;
  /** The hosted UI (`/oauth2/authorize`, `/oauth2/token`, `/logout`). */
  readonly domain: cognito.UserPoolDomain;
  readonly function: lambda.Function;
  readonly authorizer: WebSocketLambdaAuthorizer;

  constructor(scope: Construct, id: string, props: ChatAuthProps) {
    super(scope, id);

    this.userPool = new cognito.UserPool(this, 'Users', {
      featurePlan: cognito.FeaturePlan.ESSENTIALS,
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { sms: false, otp: true },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      deletionProtection: false,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    ack(
      this.userPool,
      'AwsSolutions-COG2',
      'TOTP MFA is offered to every user; requiring it is a deployment choice (set mfa: REQUIRED) that the demo leaves to the operator.',
    );
    ack(
      this.userPool,
      'AwsSolutions-COG8',
      'Threat protection needs the Cognito Plus feature plan (priced per user); the pool has no self sign-up, so only users an administrator created can sign in. Choose Plus for real funds (cdk/README.md).',
    );

    this.client = this.userPool.addClient('WebClient', {
      // A browser cannot keep a secret.
      generateSecret: false,
      authFlows: { userSrp: true, adminUserPassword: true },
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
        callbackUrls: props.callbackUrls,
        logoutUrls: props.callbackUrls,
      },
      preventUserExistenceErrors: true,
      idTokenValidity: Duration.hours(1),
      accessTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(1),
    });
    this.domain = this.userPool.addDomain('Domain', { cognitoDomain: { domainPrefix: props.domainPrefix } });

    this.function = rustFunction(this, 'Authorizer', {
      codeDir: props.codeDir,
      // One JWKS fetch (4 s timeout) at most per cold start.
      timeout: Duration.seconds(10),
      memoryMb: 128,
      environment: {
        COGNITO_USER_POOL_ID: this.userPool.userPoolId,
        COGNITO_CLIENT_ID: this.client.userPoolClientId,
      },
    });
    this.authorizer = new WebSocketLambdaAuthorizer('CognitoAuthorizer', this.function, {
      identitySource: [`route.request.querystring.${TOKEN_QUERY_PARAM}`],
    });
  }
}
