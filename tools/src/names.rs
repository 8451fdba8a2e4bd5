//! The agent's tool names, as the model calls them (the original sample's
//! names). The tools are in [`crate::toolbox`]; a model that
//! plans calls itself (the offline model) names them from here too.

pub const ESTIMATE_IMAGE_COST: &str = "estimate_image_cost";
pub const GENERATE_IMAGE: &str = "generate_image";
pub const MAKE_PAYMENT: &str = "make_payment";
pub const CHECK_BALANCE: &str = "check_balance";
pub const ANALYZE_IMAGE: &str = "analyze_image";
