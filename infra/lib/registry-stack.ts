// ECR repositories of one region. A stack of their own so that deploy.sh can create them and push the OCI
// archives before the regional stack's services (which pull those tags) are created.
import * as cdk from 'aws-cdk-lib';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import { Construct } from 'constructs';
import { AkidbConfig, names } from './config';

export interface RegistryStackProps extends cdk.StackProps {
  readonly cfg: AkidbConfig;
}

export class RegistryStack extends cdk.Stack {
  constructor(scope: Construct, id: string, props: RegistryStackProps) {
    super(scope, id, props);
    const n = names(props.cfg);
    for (const [id, repositoryName] of [['AkidbServe', n.repositories.akidbServe], ['ModelServer', n.repositories.modelServer]]) {
      new ecr.Repository(this, id, {
        repositoryName,
        // A rollback names an earlier tag; immutable tags guarantee that tag still means the same bytes.
        imageTagMutability: ecr.TagMutability.IMMUTABLE,
        imageScanOnPush: true,
        lifecycleRules: [{ description: 'keep the last 30 images (rollback targets)', maxImageCount: 30 }],
        removalPolicy: cdk.RemovalPolicy.RETAIN,
      });
    }
  }
}
