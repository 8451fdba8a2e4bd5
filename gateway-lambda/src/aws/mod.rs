//! The gateway's AWS implementations: Bedrock generation, DynamoDB payment
//! state, S3 results, and the CDP facilitator's JWT auth.
