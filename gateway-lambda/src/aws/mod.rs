//! The gateway's AWS implementations: Bedrock generation, DynamoDB payment
//! state, S3 results, and the CDP facilitator's JWT auth.

pub mod bedrock;
pub mod cdp_auth;
pub mod dynamo;
pub mod s3;
