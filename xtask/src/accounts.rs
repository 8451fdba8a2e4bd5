//! Anvil's dev accounts (mnemonic `test test test test test test test test
//! test test test junk`). Their keys are public: local use only.
//!
//! | # | role |
//! |---|---|
//! | 0 | token minter (a constant in `contracts/USDC.sol`) and facilitator settler |
//! | 1 | seller (`SELLER_WALLET`) |
//! | 2 | buyer (`BUYER_PRIVATE_KEY`) |
//! | 9 | faucet: holds USDC that `testkit::Stack::fresh_wallet` hands out |
//!
//! The faucet exists so tests never send transactions from account #0 while
//! the facilitator is settling with it (they would race for its nonce).

#[derive(Clone, Copy, Debug)]
pub struct DevAccount {
    pub address: &'static str,
    pub private_key: &'static str,
}

pub const MINTER: DevAccount = DevAccount {
    address: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    private_key: "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
};

/// The facilitator settles with the minter's account.
pub const FACILITATOR: DevAccount = MINTER;

pub const SELLER: DevAccount = DevAccount {
    address: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    private_key: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
};

pub const BUYER: DevAccount = DevAccount {
    address: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    private_key: "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
};

pub const FAUCET: DevAccount = DevAccount {
    address: "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
    private_key: "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
};

/// USDC on Base Sepolia; locally our EIP-3009 token is placed here.
pub const USDC_CONTRACT: &str = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
/// The canonical Multicall3 address (the facilitator explains failures through it).
pub const MULTICALL3: &str = "0xcA11bde05977b3631167028862bE2a173976CA11";

pub const CHAIN_ID: u64 = 84532;

/// 1,000 USDC (6 decimals): the buyer's starting balance.
pub const BUYER_START_USDC: u128 = 1_000 * 1_000_000;
/// 1,000,000 USDC: the faucet's starting balance.
pub const FAUCET_START_USDC: u128 = 1_000_000 * 1_000_000;
/// 10,000 ETH in wei, for every funded account.
pub const START_ETH_WEI: u128 = 10_000 * 1_000_000_000_000_000_000;
