//! Where paid images are kept (`IMAGES_BUCKET` or `IMAGES_DIR`).

use std::path::PathBuf;

use plumbing::env::Env;

use super::positive;

pub const DEFAULT_PRESIGN_EXPIRY_SECONDS: u64 = 3600;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImagesConfig {
    /// `IMAGES_BUCKET` (+ `IMAGES_PREFIX`, `PRESIGN_EXPIRY_SECONDS`): S3 with presigned URLs.
    S3 {
        bucket: String,
        prefix: String,
        presign_expiry_seconds: u64,
    },
    /// `IMAGES_DIR`: a local directory (file URLs).
    Dir { dir: PathBuf },
}

pub(super) fn images(env: &mut Env) -> ImagesConfig {
    let presign_expiry_seconds = positive(
        env,
        "PRESIGN_EXPIRY_SECONDS",
        DEFAULT_PRESIGN_EXPIRY_SECONDS,
    );
    // S3 presigned URLs cannot outlive 7 days.
    if presign_expiry_seconds > 7 * 24 * 3600 {
        env.problem("PRESIGN_EXPIRY_SECONDS must be at most 604800 (7 days)");
    }
    match (env.opt("IMAGES_BUCKET"), env.opt("IMAGES_DIR")) {
        (Some(bucket), None) => ImagesConfig::S3 {
            bucket,
            prefix: env.opt("IMAGES_PREFIX").unwrap_or_else(|| "images/".into()),
            presign_expiry_seconds,
        },
        (None, Some(dir)) => ImagesConfig::Dir { dir: dir.into() },
        (Some(_), Some(_)) => {
            env.problem("set IMAGES_BUCKET (S3) or IMAGES_DIR (local directory), not both");
            ImagesConfig::Dir {
                dir: PathBuf::new(),
            }
        }
        (None, None) => {
            env.problem(
                "IMAGES_BUCKET (S3) or IMAGES_DIR (local directory) is required: where paid images are kept",
            );
            ImagesConfig::Dir {
                dir: PathBuf::new(),
            }
        }
    }
}
