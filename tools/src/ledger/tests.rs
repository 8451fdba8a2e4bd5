use super::*;
use alloy::primitives::{Address, address};
use x402::Network;

use crate::signer::agentcore::PaymentSession;

const SELLER: Address = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
const EVIL: Address = address!("0x000000000000000000000000000000000000dEaD");

fn usdc(s: &str) -> Usdc {
    s.parse().unwrap()
}

fn rules() -> MoneyRules {
    MoneyRules {
        seller: SELLER,
        asset: Network::BaseSepolia.default_usdc(),
        network: Network::BaseSepolia,
        auto_approve_max: usdc("0.10"),
        max_timeout_seconds: 600,
    }
}

fn quote(amount: &str) -> Quote {
    Quote {
        version: 2,
        amount: usdc(amount),
        pay_to: SELLER,
        asset: Network::BaseSepolia.default_usdc(),
        network: Network::BaseSepolia,
        resource: "http://127.0.0.1/generate_image".into(),
        max_timeout_seconds: 300,
        requirement: x402::wire::Requirements::V2(x402::wire::RequirementsV2 {
            scheme: "exact".into(),
            network: Network::BaseSepolia.caip2().into(),
            amount: usdc(amount).atomic().to_string(),
            asset: Network::BaseSepolia.default_usdc(),
            pay_to: SELLER,
            max_timeout_seconds: 300,
            extra: None,
        }),
        resource_info: None,
    }
}

fn req(prompt: &str) -> ImageRequest {
    ImageRequest {
        prompt: prompt.into(),
        size: Default::default(),
        quality: Default::default(),
        seed: None,
    }
}

fn prepared(id: &str, amount: &str) -> LedgerEntry {
    LedgerEntry::Prepared {
        request_id: id.into(),
        payment: PreparedPayment {
            header_name: "PAYMENT-SIGNATURE".into(),
            header_value: "secret".into(),
            amount: usdc(amount),
            pay_to: SELLER,
            payer: EVIL,
            nonce: "0x01".into(),
            valid_before: 0,
        },
    }
}

fn quoted(id: &str, amount: &str, turn: &str) -> LedgerEntry {
    LedgerEntry::Quoted {
        request_id: id.into(),
        turn_id: turn.into(),
        request: req("a cat"),
        quote: Box::new(quote(amount)),
        expires_at: 1_000,
    }
}

fn approval(amount: &str, expires_at: u64) -> Option<Approval> {
    Some(Approval {
        amount: usdc(amount),
        expires_at,
    })
}

fn receipt(id: &str, amount: &str) -> PaymentReceipt {
    PaymentReceipt {
        request_id: id.into(),
        amount: usdc(amount),
        asset: "USDC".into(),
        network: "base-sepolia".into(),
        pay_to: SELLER.to_string(),
        payer: EVIL.to_string(),
        transaction: "0xabc".into(),
        transaction_url: String::new(),
        resource: String::new(),
    }
}

#[test]
fn request_ids_are_stable_per_session_and_request() {
    assert_eq!(request_id("s1", &req("cat")), request_id("s1", &req("cat")));
    assert_ne!(request_id("s1", &req("cat")), request_id("s2", &req("cat")));
    assert_ne!(request_id("s1", &req("cat")), request_id("s1", &req("dog")));
    let mut seeded = req("cat");
    seeded.seed = Some(7);
    assert_ne!(request_id("s1", &req("cat")), request_id("s1", &seeded));
}

#[test]
fn a_quote_for_anyone_or_anything_else_is_refused() {
    let mut q = quote("0.04");
    q.pay_to = EVIL;
    let rule = |q: &Quote| match check_quote(q, &rules()) {
        Err(Refusal::Policy(r)) => r.rule(),
        other => panic!("not a policy refusal: {other:?}"),
    };
    assert_eq!(rule(&q), "pay_to");
    let mut q = quote("0.04");
    q.asset = EVIL;
    assert_eq!(rule(&q), "asset");
    let mut q = quote("0.04");
    q.network = Network::Base;
    assert_eq!(rule(&q), "network");
    assert_eq!(rule(&quote("0")), "amount");
    let mut q = quote("0.04");
    q.max_timeout_seconds = u64::MAX;
    assert_eq!(rule(&q), "max_timeout");
    assert_eq!(check_quote(&quote("0.04"), &rules()), Ok(()));
}

#[test]
fn auto_approve_approval_and_budget() {
    let none: &[LedgerEntry] = &[];
    let budget = usdc("1.00");
    let d =
        |q: &str, a: Option<Approval>, now: u64| decide(none, &quote(q), a, &rules(), budget, now);
    assert_eq!(d("0.10", None, 0), Ok(Decision::Pay));
    assert_eq!(
        d("0.11", None, 0),
        Ok(Decision::NeedsConsent {
            amount: usdc("0.11"),
            auto_approve_max: usdc("0.10")
        })
    );
    // (quote, approval amount, approval expiry, now, pays?)
    let table: &[(&str, &str, u64, u64, bool)] = &[
        ("0.11", "0.11", 100, 99, true),   // approved, in time
        ("0.11", "0.11", 100, 100, false), // expired with its quote
        ("0.20", "0.11", 100, 50, false),  // re-quoted higher: not covered
        ("0.10", "0.50", 100, 500, true),  // within auto-approve anyway
        ("0.11", "0.50", 100, 50, true),   // re-quoted lower: covered
    ];
    for (q, a, exp, now, pays) in table {
        let got = d(q, approval(a, *exp), *now);
        assert_eq!(
            got == Ok(Decision::Pay),
            *pays,
            "quote {q}, approval {a} until {exp}, at {now}: {got:?}"
        );
    }
    // The budget binds even with approval; prepared-but-unsettled payments count.
    let spent = [
        prepared("a", "0.50"),
        prepared("b", "0.45"),
        prepared("b", "0.45"),
    ];
    assert_eq!(
        committed_spend(&spent),
        usdc("0.95"),
        "duplicates count once"
    );
    assert_eq!(
        decide(
            &spent,
            &quote("0.06"),
            approval("0.06", 9),
            &rules(),
            budget,
            0
        ),
        Err(Refusal::OverBudget {
            amount: usdc("0.06"),
            remaining: usdc("0.05"),
            budget
        })
    );
    assert_eq!(
        decide(&spent, &quote("0.05"), None, &rules(), budget, 0),
        Ok(Decision::Pay)
    );
    // A zero budget refuses everything.
    assert!(decide(none, &quote("0.01"), None, &rules(), Usdc::ZERO, 0).is_err());
}

#[test]
fn approvals_bind_to_one_quoted_request_until_it_expires() {
    let id = "img-1";
    let mut ledger = vec![quoted(id, "0.20", "t1")];
    let r = rules();
    // The model alone can do nothing above the limit.
    let refused = check_approved(&ledger, id, &r, 10).unwrap_err();
    assert_eq!(refused.rule(), "approval_required");
    assert_eq!(
        refused.amount_and_limit(),
        (Some(usdc("0.20")), Some(usdc("0.10")))
    );
    // Another request id, an expired quote: refused.
    assert_eq!(
        approve(&ledger, "img-other", "t2", 10),
        Err(Refusal::NoQuote("img-other".into()))
    );
    assert_eq!(
        approve(&ledger, id, "t2", 1_000),
        Err(Refusal::QuoteExpired(id.into()))
    );
    let entry = approve(&ledger, id, "t2", 10).unwrap();
    assert_eq!(
        entry,
        LedgerEntry::Approved {
            request_id: id.into(),
            turn_id: "t2".into(),
            amount: usdc("0.20"),
            expires_at: 1_000
        }
    );
    ledger.push(entry);
    assert_eq!(
        check_approved(&ledger, id, &r, 10),
        Ok(Approval {
            amount: usdc("0.20"),
            expires_at: 1_000
        })
    );
    assert_eq!(
        check_approved(&ledger, id, &r, 1_000),
        Err(Refusal::QuoteExpired(id.into()))
    );
    // A later quote at a higher price is not covered by the approval.
    ledger.push(quoted(id, "0.30", "t3"));
    assert_eq!(
        check_approved(&ledger, id, &r, 10).unwrap_err().rule(),
        "approval_required"
    );
    // Declining clears it; legacy model consent is not honoured.
    ledger.push(quoted(id, "0.20", "t4"));
    assert!(check_approved(&ledger, id, &r, 10).is_ok());
    ledger.push(decline(&ledger, id, "t5").unwrap());
    assert!(check_approved(&ledger, id, &r, 10).is_err());
    ledger.push(LedgerEntry::Consented {
        request_id: id.into(),
        turn_id: "t6".into(),
        amount: usdc("0.20"),
    });
    assert!(check_approved(&ledger, id, &r, 10).is_err());
}

#[test]
fn the_state_machine_moves_forward_only() {
    let id = "img-1";
    let mut ledger = vec![quoted(id, "0.20", "t1")];
    assert!(matches!(
        request_state(&ledger, id),
        RequestState::Quoted { approval: None, .. }
    ));
    ledger.push(approve(&ledger, id, "t2", 5).unwrap());
    assert!(matches!(
        request_state(&ledger, id),
        RequestState::Quoted { approval: Some(a), .. } if a.amount == usdc("0.20")
    ));
    ledger.push(prepared(id, "0.20"));
    let RequestState::Prepared { payment, request } = request_state(&ledger, id) else {
        panic!("prepared")
    };
    assert_eq!(request.prompt, "a cat");
    // A later quote or a second prepared payment never replaces the first.
    ledger.push(quoted(id, "0.01", "t3"));
    ledger.push(prepared(id, "0.01"));
    assert!(
        matches!(request_state(&ledger, id), RequestState::Prepared { payment: p, .. } if p == payment)
    );
    assert_eq!(
        approve(&ledger, id, "t4", 5),
        Err(Refusal::AlreadyPaid(id.into()))
    );
    ledger.push(LedgerEntry::Paid {
        request_id: id.into(),
        receipt: receipt(id, "0.20"),
    });
    ledger.push(LedgerEntry::Stored {
        request_id: id.into(),
        image: StoredImage {
            image_id: "i1".into(),
            key: "k".into(),
            url: "file:///k".into(),
            prompt: "a cat".into(),
        },
    });
    assert!(matches!(
        request_state(&ledger, id),
        RequestState::Stored {
            receipt: Some(_),
            ..
        }
    ));
    assert_eq!(settled_spend(&ledger), usdc("0.20"));
    assert_eq!(committed_spend(&ledger), usdc("0.20"));
    assert_eq!(images(&ledger).len(), 1);
}

#[test]
fn a_payment_session_is_reused_until_it_expires_or_the_budget_changes() {
    let open = |id: &str, expires_at: u64, budget: &str| LedgerEntry::PaymentSession {
        session: PaymentSession {
            payment_session_id: id.into(),
            max_spend: usdc(budget),
            expires_at,
        },
        budget: usdc(budget),
    };
    let mut ledger = vec![quoted("img-1", "0.04", "t1")];
    assert_eq!(payment_session(&ledger, 100, usdc("1.00")), None);
    ledger.push(open("ps-1", 10_000, "1.00"));
    let found = |l: &[LedgerEntry], now, b| {
        payment_session(l, now, usdc(b)).map(|s| s.payment_session_id.clone())
    };
    assert_eq!(found(&ledger, 100, "1.00").as_deref(), Some("ps-1"));
    assert_eq!(found(&ledger, 9_990, "1.00"), None, "about to expire");
    assert_eq!(found(&ledger, 100, "2.00"), None, "another budget");
    ledger.push(open("ps-2", 20_000, "1.00"));
    assert_eq!(found(&ledger, 9_990, "1.00").as_deref(), Some("ps-2"));
    assert_eq!(payment_sessions_opened(&ledger), 2);
    // Sessions and service refusals never move a request's state.
    ledger.push(LedgerEntry::ServiceRefused {
        request_id: "img-1".into(),
        turn_id: "t1".into(),
        rule: "agentcore_session_limit".into(),
        amount: usdc("0.04"),
        limit: Some(usdc("0.01")),
        reason: "over".into(),
    });
    assert!(matches!(
        request_state(&ledger, "img-1"),
        RequestState::Quoted { .. }
    ));
    assert_eq!(committed_spend(&ledger), Usdc::ZERO);
}

#[test]
fn entries_round_trip_and_never_print_the_payment() {
    let e = prepared("x", "0.04");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["type"], "prepared");
    assert_eq!(serde_json::from_value::<LedgerEntry>(json).unwrap(), e);
    assert!(!format!("{e:?}").contains("secret"));
}

/// One entry of every kind, with a v2 and a v1 quote (each with its
/// resource and token extra), as stored by format 1.
fn every_kind() -> Vec<LedgerEntry> {
    let mut v2 = quote("0.04");
    if let x402::wire::Requirements::V2(r) = &mut v2.requirement {
        r.extra = Some(x402::wire::TokenExtra {
            name: "USDC".into(),
            version: "2".into(),
        });
    }
    v2.resource_info = Some(x402::wire::ResourceInfo {
        url: "http://127.0.0.1/generate_image".into(),
        description: "an image".into(),
        mime_type: "application/json".into(),
    });
    let mut v1 = quote("0.02");
    v1.version = 1;
    v1.requirement = x402::wire::Requirements::V1(x402::wire::RequirementsV1 {
        scheme: "exact".into(),
        network: "base-sepolia".into(),
        max_amount_required: "20000".into(),
        resource: "http://127.0.0.1/generate_image".into(),
        description: "an image".into(),
        mime_type: "application/json".into(),
        pay_to: SELLER,
        max_timeout_seconds: 300,
        asset: Network::BaseSepolia.default_usdc(),
        output_schema: None,
        extra: Some(x402::wire::TokenExtra {
            name: "USDC".into(),
            version: "2".into(),
        }),
    });
    vec![
        LedgerEntry::Quoted {
            request_id: "img-1".into(),
            turn_id: "t1".into(),
            request: req("a castle"),
            quote: Box::new(v2),
            expires_at: 1_700_000_300,
        },
        LedgerEntry::Quoted {
            request_id: "img-2".into(),
            turn_id: "t1".into(),
            request: req("a boat"),
            quote: Box::new(v1),
            expires_at: 1_700_000_300,
        },
        LedgerEntry::Consented {
            request_id: "img-1".into(),
            turn_id: "t1".into(),
            amount: usdc("0.04"),
        },
        LedgerEntry::Approved {
            request_id: "img-1".into(),
            turn_id: "t2".into(),
            amount: usdc("0.04"),
            expires_at: 1_700_000_300,
        },
        LedgerEntry::Declined {
            request_id: "img-2".into(),
            turn_id: "t2".into(),
        },
        prepared("img-1", "0.04"),
        LedgerEntry::Paid {
            request_id: "img-1".into(),
            receipt: receipt("img-1", "0.04"),
        },
        LedgerEntry::Stored {
            request_id: "img-1".into(),
            image: StoredImage {
                image_id: "i-1".into(),
                key: "u/s/i-1.png".into(),
                url: "file:///tmp/i-1.png".into(),
                prompt: "a castle".into(),
            },
        },
        LedgerEntry::Rejected {
            request_id: "img-3".into(),
            reason: "refused".into(),
        },
        LedgerEntry::PaymentSession {
            session: PaymentSession {
                payment_session_id: "ps-1".into(),
                max_spend: usdc("0.50"),
                expires_at: 1_700_001_800,
            },
            budget: usdc("0.50"),
        },
        LedgerEntry::ServiceRefused {
            request_id: "img-4".into(),
            turn_id: "t3".into(),
            rule: "payment_session_limit".into(),
            amount: usdc("0.04"),
            limit: Some(usdc("0.01")),
            reason: "over the session's limit".into(),
        },
    ]
}

/// Every field of every kind of entry, as format 1 stores it. Rewrite the
/// file with `UPDATE_LEDGER_FORMAT=1` only together with a new [`FORMAT`].
#[test]
fn the_stored_format_is_pinned() {
    const PINNED: &str = include_str!("format_v1.json");
    let stored: Vec<serde_json::Value> = every_kind().iter().map(encode).collect();
    if std::env::var_os("UPDATE_LEDGER_FORMAT").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ledger/format_v1.json");
        let text = serde_json::to_string_pretty(&stored).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
        return;
    }
    let pinned: Vec<serde_json::Value> = serde_json::from_str(PINNED).unwrap();
    assert_eq!(
        stored, pinned,
        "the ledger's stored format changed: give it a new FORMAT and read the old one"
    );
    let read: Vec<LedgerEntry> = pinned.into_iter().map(|v| decode(v).unwrap()).collect();
    assert_eq!(read, every_kind());
}

#[test]
fn entries_without_a_format_are_format_1_and_newer_ones_are_refused() {
    for e in every_kind() {
        let unnumbered = serde_json::to_value(&e).unwrap();
        assert_eq!(decode(unnumbered).unwrap(), e);
    }
    let mut newer = encode(&prepared("x", "0.04"));
    newer["format"] = (FORMAT + 1).into();
    assert!(matches!(decode(newer), Err(DecodeError::Newer(2))));
}
