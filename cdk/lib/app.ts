import { App, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AgentStack } from './agent-stack';
import { ChatStack } from './chat-stack';
import { DeployConfig } from './config';
import { GatewayStack } from './gateway-stack';
import { acknowledgeCommon } from './nag';

export interface Stacks {
  readonly gateway: GatewayStack;
  readonly agent: AgentStack;
  readonly chat: ChatStack;
}

/** Adds the three stacks and the cdk-nag AwsSolutions checks to `app`. */
export function buildApp(app: App, config: DeployConfig, props: StackProps = {}): Stacks {
  const gateway = new GatewayStack(app, `${config.prefix}Gateway`, config, props);
  const agent = new AgentStack(app, `${config.prefix}Agent`, config, { ...props, gatewayUrl: gateway.url });
  const chat = new ChatStack(app, `${config.prefix}Chat`, config, {
    ...props,
    agentRuntimeArn: agent.runtime.agentRuntimeArn,
  });
  for (const stack of [gateway, agent, chat] as Stack[]) acknowledgeCommon(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { gateway, agent, chat };
}
