import { CfnResource, Stack, Token, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * cdk-nag (v3) acknowledgements. Every accepted AwsSolutions finding is
 * acknowledged next to its cause with a reason; anything else fails synthesis
 * (and so `npm test`). Wildcard findings (IAM5) are acknowledged one by one.
 */
export function ack(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** `Resource::<LogicalId.Arn>/suffix`: the IAM5 finding for objects of a bucket. */
export function objectsFinding(bucket: IConstruct, suffix: string): string {
  const cfn = bucket.node.defaultChild as CfnResource;
  return `AwsSolutions-IAM5[Resource::<${Stack.of(bucket).getLogicalId(cfn)}.Arn>/${suffix}]`;
}

/** Findings common to every stack. */
export function acknowledgeCommon(stack: Stack): void {
  ack(
    stack,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'CloudWatch Logs only, for the Lambda roles and the CDK auto-delete-objects provider; no data-plane access.',
  );
  ack(
    stack,
    'AwsSolutions-L1',
    "The only non-Rust functions are CDK's own (the auto-delete-objects provider; in the chat stack, the BucketDeployment that copies the web page), whose runtimes CDK pins.",
  );
}

/** The stack's region as cdk-nag prints it in findings. */
export function nagRegion(stack: Stack): string {
  return Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
}

/** The stack's account as cdk-nag prints it in findings. */
export function nagAccount(stack: Stack): string {
  return Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
}
