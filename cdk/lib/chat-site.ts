import { DefaultStackSynthesizer, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import { ack, nagAccount, nagRegion, objectsFinding } from './nag';

/** Where the page's scripts and stylesheet live (index.html loads `/assets/...`). */
export const ASSETS_PREFIX = 'assets/';
/** The page's configuration, next to index.html; its presence switches the page to AWS mode (agent/web/aws.js). */
export const CONFIG_KEY = 'config.json';

/**
 * What the deployed page reads from `/config.json`: where the WebSocket API
 * is and how to sign in. All public (a browser app client has no secret).
 */
export interface SiteConfig {
  readonly region: string;
  /** `wss://{api}.execute-api.{region}.amazonaws.com/{stage}`. */
  readonly webSocketUrl: string;
  readonly userPoolId: string;
  readonly userPoolClientId: string;
  /** `https://{prefix}.auth.{region}.amazoncognito.com`: the hosted UI (`/oauth2/authorize`, `/oauth2/token`, `/logout`). */
  readonly cognitoDomain: string;
  /** OAuth scopes the page asks for (space-separated). */
  readonly scopes: string;
}

export interface ChatSiteProps {
  /** `agent/web/`: the page, deployed as is (no build step); `tests/` stays behind. */
  readonly webDir: string;
  /** Origins the page may connect to besides its own: the WebSocket API (`wss://...`) and the Cognito domain (`https://...`). */
  readonly connectOrigins: string[];
}

/**
 * The web chat page as a static site: a private S3 bucket that only this
 * CloudFront distribution may read (origin access control: a bucket policy
 * for `cloudfront.amazonaws.com` conditioned on the distribution's ARN), HTTPS
 * only, with the same strict Content-Security-Policy the agent serves locally
 * plus the two remote origins the page talks to on AWS.
 *
 * The distribution exists before the Cognito app client (whose callback URL
 * it is) and the page's `config.json` after it (it names the client):
 * `deploy()` is the second half, called once the client exists.
 */
export class ChatSite extends Construct {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  /** `https://{distribution domain}/`: the page, and the OAuth callback and sign-out URL. */
  readonly url: string;
  private readonly webDir: string;

  constructor(scope: Construct, id: string, props: ChatSiteProps) {
    super(scope, id);
    this.webDir = props.webDir;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // The page's files only, redeployed from the repository on every deploy.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    ack(
      this.bucket,
      'AwsSolutions-S1',
      "The page's own files, written only by the CDK deployment and read only by CloudFront; enable CloudFront standard logging or CloudTrail S3 data events per account if access auditing is required.",
    );

    const csp = [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      // Presigned https S3 URLs of the paid images.
      "img-src 'self' data: https:",
      `connect-src 'self' ${props.connectOrigins.join(' ')}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; ');
    const headers = new cloudfront.ResponseHeadersPolicy(this, 'Headers', {
      comment: 'x402 agent web chat: CSP, HSTS, no framing, no sniffing, no referrer',
      securityHeadersBehavior: {
        contentSecurityPolicy: { contentSecurityPolicy: csp, override: true },
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(365),
          includeSubdomains: true,
          override: true,
        },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        // The OAuth code arrives in the URL: never send it on as a referrer.
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
      },
    });

    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'x402 agent web chat',
      defaultRootObject: 'index.html',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_GET_HEAD,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: headers,
        compress: true,
      },
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
    });
    this.url = `https://${this.distribution.distributionDomainName}/`;

    ack(
      this.distribution,
      'AwsSolutions-CFR1',
      'A sign-in page for the users an administrator created; who may use the chat is decided by the Cognito pool, not by country.',
    );
    ack(
      this.distribution,
      'AwsSolutions-CFR2',
      'Static files only (no origin logic to protect); the WebSocket API behind the page authorizes every connection. Attach a WAF web ACL per account if required.',
    );
    ack(
      this.distribution,
      'AwsSolutions-CFR3',
      "Standard logging needs an ACL-enabled log bucket; the page is public static content and every chat action is logged by the chat Lambda. Enable it per account if required.",
    );
    ack(
      this.distribution,
      'AwsSolutions-CFR4',
      'The default *.cloudfront.net certificate, for which CloudFront fixes the viewer security policy; use a custom domain with an ACM certificate and TLSv1.2_2021 to choose it.',
    );
  }

  /**
   * Deploys the page (straight from `agent/web/`: `index.html` at the root,
   * the other files under `assets/`) and `config.json`. Objects are served
   * with `Cache-Control: no-cache` so a deploy is seen at once (the cache
   * policy's 1 s minimum still spares the bucket).
   */
  deploy(config: SiteConfig): void {
    const cacheControl = [s3deploy.CacheControl.noCache()];
    // Two deployments, one prefix each: the assets one prunes only under `assets/`.
    const assets = new s3deploy.BucketDeployment(this, 'DeployAssets', {
      sources: [s3deploy.Source.asset(this.webDir, { exclude: ['tests', 'index.html'] })],
      destinationBucket: this.bucket,
      destinationKeyPrefix: ASSETS_PREFIX,
      cacheControl,
    });
    const page = new s3deploy.BucketDeployment(this, 'DeployPage', {
      sources: [
        s3deploy.Source.asset(this.webDir, { exclude: ['*', '!index.html'] }),
        s3deploy.Source.jsonData(CONFIG_KEY, config),
      ],
      destinationBucket: this.bucket,
      // The root also holds `assets/`, which the other deployment owns.
      prune: false,
      cacheControl,
    });
    // The page refers to the assets: upload them first.
    page.node.addDependency(assets);

    // Both deployments share one CDK-managed copy function; its role copies
    // from the CDK asset bucket into this bucket.
    const stack = Stack.of(this);
    const assetBucket = DefaultStackSynthesizer.DEFAULT_FILE_ASSETS_BUCKET_NAME.replace(
      '${Qualifier}',
      DefaultStackSynthesizer.DEFAULT_QUALIFIER,
    )
      .replace('${AWS::AccountId}', nagAccount(stack))
      .replace('${AWS::Region}', nagRegion(stack));
    const copier = page.handlerRole;
    for (const action of ['s3:GetBucket*', 's3:GetObject*', 's3:List*']) {
      ack(
        copier,
        `AwsSolutions-IAM5[Action::${action}]`,
        "CDK's BucketDeployment reads the page's zipped files from the CDK asset bucket and lists the site bucket to sync it; the actions are CDK's grantRead, on those two buckets only.",
      );
    }
    for (const action of ['s3:Abort*', 's3:DeleteObject*']) {
      ack(
        copier,
        `AwsSolutions-IAM5[Action::${action}]`,
        "CDK's BucketDeployment replaces the page's files (grantReadWrite on the site bucket only).",
      );
    }
    ack(
      copier,
      `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${assetBucket}/*]`,
      "The CDK asset bucket's objects: the staged zip's key is only known at deploy time.",
    );
    ack(
      copier,
      objectsFinding(this.bucket, '*'),
      "Every object of the site bucket: a deploy replaces the page's files, whatever their names.",
    );
  }
}

/** The hosted UI origin of a Cognito domain prefix in `stack`'s region. */
export function cognitoDomainUrl(stack: Stack, domainPrefix: string): string {
  return `https://${domainPrefix}.auth.${stack.region}.amazoncognito.com`;
}
