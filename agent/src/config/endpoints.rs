//! Where outside services are reached when not at their public address:
//! the local stack points the AWS SDK at moto and the CDP client at a
//! stand-in. Read here once, with the rest of the configuration, so that
//! wiring never reads the environment itself.

use plumbing::env::Env;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// `AWS_ENDPOINT_URL`: every AWS service at one local endpoint (moto).
    /// The SDK reads it itself; S3 there needs path-style addressing.
    pub aws: Option<String>,
    /// `CDP_BASE_URL`, default the CDP platform API.
    pub cdp_base_url: String,
}

impl Endpoints {
    /// S3 behind a local endpoint serves buckets by path, not by host name.
    pub fn s3_path_style(&self) -> bool {
        self.aws.is_some()
    }
}

pub(super) fn endpoints(env: &Env) -> Endpoints {
    Endpoints {
        aws: env.opt("AWS_ENDPOINT_URL"),
        cdp_base_url: env
            .opt("CDP_BASE_URL")
            .unwrap_or_else(|| cdp_sdk::CDP_BASE_URL.to_owned()),
    }
}
