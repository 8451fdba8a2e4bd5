//! USDC amounts.
//!
//! Money is never a float here. A [`Usdc`] is a count of atomic units
//! (micro-USDC: USDC has 6 decimals), and conversions to and from decimal text
//! are exact: text with more than 6 fractional digits is refused rather than
//! silently rounded, so "0.0000001" can never become a payment of 0.

use std::{fmt, str::FromStr};

use alloy::primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of decimals of USDC (and of every amount this project handles).
pub const DECIMALS: u32 = 6;
const ONE: u64 = 1_000_000;

/// An amount of USDC in atomic units (1 USDC = 1_000_000).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usdc(u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AmountError {
    #[error("amount {0:?} is not a decimal number of USDC")]
    Malformed(String),
    #[error("amount {0:?} has more than 6 decimal places")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl Usdc {
    pub const ZERO: Usdc = Usdc(0);

    /// From atomic units (micro-USDC).
    pub const fn from_atomic(units: u64) -> Self {
        Usdc(units)
    }

    /// From whole micro-USDC as a `U256` (as found on the wire and on chain).
    pub fn from_u256(v: U256) -> Result<Self, AmountError> {
        u64::try_from(v)
            .map(Usdc)
            .map_err(|_| AmountError::TooLarge(v.to_string()))
    }

    pub const fn atomic(self) -> u64 {
        self.0
    }

    pub fn to_u256(self) -> U256 {
        U256::from(self.0)
    }

    pub fn checked_add(self, other: Usdc) -> Option<Usdc> {
        self.0.checked_add(other.0).map(Usdc)
    }

    pub fn checked_sub(self, other: Usdc) -> Option<Usdc> {
        self.0.checked_sub(other.0).map(Usdc)
    }

    pub fn saturating_sub(self, other: Usdc) -> Usdc {
        Usdc(self.0.saturating_sub(other.0))
    }

    /// Parses an atomic amount written as a decimal integer string, the x402
    /// wire form (`"40000"` = 0.04 USDC).
    pub fn parse_atomic(s: &str) -> Result<Self, AmountError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Malformed(s.to_owned()));
        }
        s.parse::<u64>()
            .map(Usdc)
            .map_err(|_| AmountError::TooLarge(s.to_owned()))
    }

    /// The amount as the x402 wire writes it: atomic units, decimal.
    pub fn atomic_string(self) -> String {
        self.0.to_string()
    }

    /// Micro-USDC needed to pay `numerator / denominator` micro-USDC, rounded
    /// up: a seller never quotes less than its cost because of rounding.
    pub fn div_ceil(numerator: u128, denominator: u128) -> Result<Self, AmountError> {
        assert!(denominator != 0, "division by zero");
        let q = numerator.div_ceil(denominator);
        u64::try_from(q)
            .map(Usdc)
            .map_err(|_| AmountError::TooLarge(q.to_string()))
    }
}

/// Parses human decimal USDC: `"0.04"`, `"1"`, `"1.000001"`, `"$0.04"`.
impl FromStr for Usdc {
    type Err = AmountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix('$').unwrap_or(t);
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return Err(AmountError::Malformed(s.to_owned()));
        }
        if frac.len() > DECIMALS as usize {
            return Err(AmountError::TooPrecise(s.to_owned()));
        }
        let int: u64 = if int.is_empty() {
            0
        } else {
            int.parse()
                .map_err(|_| AmountError::TooLarge(s.to_owned()))?
        };
        // Right-pad the fraction to 6 digits: "04" -> "040000".
        let frac_units: u64 = format!("{frac:0<6}").parse().unwrap_or(0);
        int.checked_mul(ONE)
            .and_then(|v| v.checked_add(frac_units))
            .map(Usdc)
            .ok_or_else(|| AmountError::TooLarge(s.to_owned()))
    }
}

/// Decimal USDC with at least two decimals and no trailing zeros beyond them:
/// `0.04`, `1.00`, `0.000123`.
impl fmt::Display for Usdc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.0 / ONE;
        let frac = format!("{:06}", self.0 % ONE);
        let trimmed = frac.trim_end_matches('0');
        let shown = if trimmed.len() < 2 {
            &frac[..2]
        } else {
            trimmed
        };
        write!(f, "{int}.{shown}")
    }
}

/// Serialized as decimal USDC text (`"0.04"`), the form people and models read.
impl Serialize for Usdc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Usdc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Usdc {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Usdc".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An amount of USDC as a decimal string with at most 6 decimals, e.g. \"0.04\"",
            "pattern": "^[0-9]+(\\.[0-9]{1,6})?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_exactly() {
        assert_eq!("0.04".parse::<Usdc>().unwrap(), Usdc(40_000));
        assert_eq!("$1".parse::<Usdc>().unwrap(), Usdc(1_000_000));
        assert_eq!("1.000001".parse::<Usdc>().unwrap(), Usdc(1_000_001));
        assert_eq!(".5".parse::<Usdc>().unwrap(), Usdc(500_000));
        assert_eq!("0.000001".parse::<Usdc>().unwrap(), Usdc(1));
    }

    #[test]
    fn refuses_more_than_six_decimals_instead_of_rounding() {
        assert_eq!(
            "0.0000001".parse::<Usdc>(),
            Err(AmountError::TooPrecise("0.0000001".into()))
        );
        assert!(matches!(
            "1.0000005".parse::<Usdc>(),
            Err(AmountError::TooPrecise(_))
        ));
    }

    #[test]
    fn refuses_garbage_and_negative_and_overflow() {
        for bad in ["", ".", "-1", "1e3", "0x10", "1.2.3", "abc", " 1 2"] {
            assert!(bad.parse::<Usdc>().is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            "18446744073709.551616".parse::<Usdc>(),
            Err(AmountError::TooLarge(_))
        ));
    }

    #[test]
    fn displays_round_trip() {
        for (units, text) in [
            (40_000, "0.04"),
            (1_000_000, "1.00"),
            (123, "0.000123"),
            (1_500_000, "1.50"),
            (0, "0.00"),
            (999_999, "0.999999"),
        ] {
            assert_eq!(Usdc(units).to_string(), text);
            assert_eq!(text.parse::<Usdc>().unwrap(), Usdc(units));
        }
    }

    #[test]
    fn atomic_wire_form() {
        assert_eq!(Usdc::parse_atomic("40000").unwrap(), Usdc(40_000));
        assert!(Usdc::parse_atomic("4.0").is_err());
        assert!(Usdc::parse_atomic("-4").is_err());
        assert!(Usdc::parse_atomic("").is_err());
        assert!(Usdc::parse_atomic("99999999999999999999999").is_err());
        assert_eq!(Usdc(40_000).atomic_string(), "40000");
    }

    #[test]
    fn rounding_up_at_the_six_decimal_boundary() {
        // 1 micro-USDC and a bit is 2 micro-USDC; exact stays exact.
        assert_eq!(Usdc::div_ceil(1_001, 1_000).unwrap(), Usdc(2));
        assert_eq!(Usdc::div_ceil(1_000, 1_000).unwrap(), Usdc(1));
        assert_eq!(Usdc::div_ceil(1, 1_000_000).unwrap(), Usdc(1));
        assert_eq!(Usdc::div_ceil(0, 7).unwrap(), Usdc(0));
    }

    #[test]
    fn serde_as_decimal_text() {
        let j = serde_json::to_string(&Usdc(60_000)).unwrap();
        assert_eq!(j, "\"0.06\"");
        assert_eq!(
            serde_json::from_str::<Usdc>("\"0.06\"").unwrap(),
            Usdc(60_000)
        );
        assert!(
            serde_json::from_str::<Usdc>("0.06").is_err(),
            "numbers are refused"
        );
    }
}
