//! Lambda REQUEST authorizer for the chat WebSocket API's `$connect` route.
//!
//! API Gateway WebSocket APIs accept Lambda (or IAM) authorizers only on
//! `$connect`, and a browser cannot set headers on a WebSocket, so the
//! signed-in user's Amazon Cognito token (ID or access token of the chat's
//! app client) arrives as `?token=...`. [`token`] verifies it (RS256
//! signature against the pool's JWKS, issuer, token use, client, expiry),
//! [`jwks`] fetches and caches the pool's keys, [`authorize`] turns the
//! result into the IAM policy API Gateway expects, with the user's `sub` in
//! the context for the chat Lambda. Once connected, every message of that
//! connection is the user's: the chat Lambda takes the user id from there
//! and nowhere else.

pub mod authorize;
pub mod config;
pub mod jwks;
pub mod token;

pub use authorize::{Authorizer, AuthorizerResponse, ConnectRequest};
