// cdk-nag v3 findings are acknowledged with CDK's own Validations API; this keeps every acknowledgement in the
// same shape and refuses one without a real reason.
import { Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

export interface Acknowledgement {
  /** Rule id, or `Rule[Finding]` for one finding of a rule that reports several (IAM5). */
  readonly id: string;
  readonly reason: string;
}

export function acknowledge(scope: IConstruct, acks: Acknowledgement[]): void {
  for (const ack of acks) {
    if (ack.reason.trim().length < 20) throw new Error(`cdk-nag acknowledgement ${ack.id} on ${scope.node.path} needs a reason`);
    Validations.of(scope).acknowledge({ id: ack.id, reason: ack.reason });
  }
}
