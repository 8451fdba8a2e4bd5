import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ack } from './nag';

/** TTL attribute of every table (epoch seconds). */
export const TTL_ATTRIBUTE = 'expiresAt';

/** A private, encrypted, TLS-only bucket whose objects expire. */
export function privateBucket(scope: Construct, id: string, expiryDays: number): s3.Bucket {
  const bucket = new s3.Bucket(scope, id, {
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    lifecycleRules: [
      { expiration: Duration.days(expiryDays), abortIncompleteMultipartUploadAfter: Duration.days(1) },
    ],
    // Generated content only: `scripts/destroy.sh` removes everything.
    removalPolicy: RemovalPolicy.DESTROY,
    autoDeleteObjects: true,
  });
  ack(
    bucket,
    'AwsSolutions-S1',
    'Buckets hold short-lived generated images reached only through presigned URLs signed by our roles; enable CloudTrail S3 data events per account if access auditing is required.',
  );
  return bucket;
}

/** An on-demand table keyed by one string attribute, with a TTL. */
export function ttlTable(
  scope: Construct,
  id: string,
  partitionKey: string,
  opts: { pointInTimeRecovery: boolean },
): dynamodb.Table {
  return new dynamodb.Table(scope, id, {
    partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: TTL_ATTRIBUTE,
    encryption: dynamodb.TableEncryption.AWS_MANAGED,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: opts.pointInTimeRecovery },
    removalPolicy: RemovalPolicy.DESTROY,
  });
}

/** A Rust Lambda (provided.al2023, arm64) from a directory holding `bootstrap`. */
export function rustFunction(
  scope: Construct,
  id: string,
  props: { codeDir: string; timeout: Duration; memoryMb: number; environment: Record<string, string> },
): lambda.Function {
  const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
    retention: logs.RetentionDays.ONE_MONTH,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  return new lambda.Function(scope, id, {
    runtime: lambda.Runtime.PROVIDED_AL2023,
    architecture: lambda.Architecture.ARM_64,
    handler: 'bootstrap',
    code: lambda.Code.fromAsset(props.codeDir),
    timeout: props.timeout,
    memorySize: props.memoryMb,
    logGroup,
    environment: { RUST_LOG: 'info', ...props.environment },
  });
}

/**
 * An existing Secrets Manager secret, by name, and the env var that points the
 * app at it: `{NAME}_SECRET_ARN` (partial ARN). The app reads the value at run
 * time; the template holds only the name. Call `secret.grantRead(...)`.
 */
export function secretRef(
  scope: Construct,
  id: string,
  secretName: string,
  envName: string,
): { secret: secretsmanager.ISecret; env: Record<string, string> } {
  const secret = secretsmanager.Secret.fromSecretNameV2(scope, id, secretName);
  return { secret, env: { [`${envName}_SECRET_ARN`]: secret.secretArn } };
}
