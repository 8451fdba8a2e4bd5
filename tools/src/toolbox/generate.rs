//! `generate_image`: one request through the ledger's state machine, from
//! quote to stored image, each step persisted before the next; and what a
//! seller's `402` to a sent payment means (asked of the chain).

use base64::Engine as _;

use super::{GenerateResult, ImageArgs, ToolBox, ToolError, TurnContext};
use crate::{
    access::AccessError,
    declined::{self, Verdict},
    ids::storage_id,
    ledger::{self, Decision, LedgerEntry, Refusal, RequestState, StoredImage},
    progress::{PaymentReceipt, QuoteInfo},
    seller::{Purchase, SellerError},
};

impl ToolBox {
    /// Runs a request's state machine to the end (see [`crate::ledger`]).
    pub(super) async fn generate_image(
        &self,
        ctx: &TurnContext,
        args: ImageArgs,
    ) -> Result<GenerateResult, ToolError> {
        // Held for the whole money path: see `TurnContext`.
        let mut ledger = ctx.ledger.lock().await;
        let req = self.image_request(&ledger, args)?;
        let seller = self.seller()?;
        let request_id = ledger::request_id(&ctx.session_id, &req);
        let mut paid_now = false;
        loop {
            match ledger::request_state(&ledger, &request_id) {
                RequestState::Stored { receipt, image } => {
                    ctx.show_image(&image);
                    return Ok(GenerateResult::Generated {
                        request_id,
                        image_id: image.image_id,
                        url: image.url,
                        price_usdc: receipt.as_ref().map(|r| r.amount),
                        transaction_url: receipt.map(|r| r.transaction_url),
                        already_paid: !paid_now,
                    });
                }
                RequestState::Rejected { reason } => {
                    return Err(ToolError::Other(format!(
                        "the image service refused the payment for this request earlier ({reason}); \
                         no money moved for it. Use a different seed to make a new request."
                    )));
                }
                RequestState::New | RequestState::Quoted { .. } => {
                    let approval = match ledger::request_state(&ledger, &request_id) {
                        RequestState::Quoted { approval, .. } => approval,
                        _ => None,
                    };
                    let quote = seller.quote(&req).await?;
                    let now = (self.spending.clock)();
                    let decision = match ledger::decide(
                        &ledger,
                        &quote,
                        approval,
                        &self.rules,
                        ctx.budget,
                        now,
                    ) {
                        Ok(d) => d,
                        Err(r) => return Err(ctx.refused(&request_id, r).await),
                    };
                    let expires_at = self.quote_expiry();
                    ctx.record(
                        &mut ledger,
                        LedgerEntry::Quoted {
                            request_id: request_id.clone(),
                            turn_id: ctx.turn_id.clone(),
                            request: req.clone(),
                            quote: Box::new(quote.clone()),
                            expires_at,
                        },
                    )
                    .await?;
                    ctx.show_quote(QuoteInfo {
                        request_id: request_id.clone(),
                        amount: quote.amount,
                        pay_to: quote.pay_to.to_checksum(None),
                        asset: quote.asset.to_checksum(None),
                        network: quote.network.v1_name().into(),
                        description: format!("image: {}", req.prompt),
                        expires_at,
                        needs_approval: matches!(decision, Decision::NeedsConsent { .. }),
                    });
                    match decision {
                        Decision::NeedsConsent {
                            amount,
                            auto_approve_max,
                        } => {
                            return Ok(GenerateResult::AuthorizationRequired {
                                request_id,
                                price_usdc: amount,
                                auto_approve_max_usdc: auto_approve_max,
                                message: format!(
                                    "authorization required: this image costs {amount} USDC, above the \
                                     auto-approve limit of {auto_approve_max} USDC. Tell the user the price; \
                                     they approve or decline in their app, and an approval pays and \
                                     generates this request without you."
                                ),
                            });
                        }
                        Decision::Pay => {
                            // The daily caps across sessions, reserved
                            // atomically BEFORE signing (see `crate::access`).
                            let reservation = self.reservation(ctx, &request_id, quote.amount);
                            match self
                                .spending
                                .access
                                .reserve(&reservation, &self.spending.caps)
                                .await
                            {
                                Ok(()) => {}
                                Err(AccessError::Cap(c)) => {
                                    return Err(ctx.refused(&request_id, Refusal::Cap(c)).await);
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "cap reservation failed");
                                    return Err(ToolError::Limits(e.to_string()));
                                }
                            }
                            let payment = match self
                                .prepare_payment(ctx, &mut ledger, seller, &request_id, &quote)
                                .await
                            {
                                Ok(p) => p,
                                Err(e) => {
                                    self.release(&reservation).await;
                                    return Err(e);
                                }
                            };
                            // Persisted BEFORE it is sent: from here on, only
                            // this payment is ever sent for this request.
                            if let Err(e) = ctx
                                .record(
                                    &mut ledger,
                                    LedgerEntry::Prepared {
                                        request_id: request_id.clone(),
                                        payment,
                                    },
                                )
                                .await
                            {
                                // Never sent, never stored: it cannot settle.
                                self.release(&reservation).await;
                                return Err(e);
                            }
                        }
                    }
                }
                state @ (RequestState::Prepared { .. } | RequestState::Paid { .. }) => {
                    let (payment, settled) = match state {
                        RequestState::Prepared { payment, .. } => (payment, None),
                        RequestState::Paid {
                            payment, receipt, ..
                        } => (payment, Some(receipt)),
                        _ => unreachable!("matched above"),
                    };
                    let already_settled = settled.is_some();
                    // The same payment, whatever happened before: the seller
                    // answers a repeat with the content it already sold.
                    let purchase = match seller.send(&req, &payment).await {
                        Ok(p) => p,
                        Err(SellerError::PaymentRejected(reason)) => {
                            if let Some(receipt) = settled {
                                return Err(ToolError::Other(paid_not_delivered(
                                    &receipt, &reason,
                                )));
                            }
                            // Paid on chain: recorded, then re-sent (above).
                            let receipt = self
                                .on_declined(ctx, &mut ledger, &request_id, &payment, &reason)
                                .await?;
                            paid_now = true;
                            ctx.show_payment(receipt);
                            continue;
                        }
                        Err(e @ SellerError::Indeterminate(_)) => {
                            return Err(ToolError::Other(format!(
                                "{e}. The payment is saved: calling generate_image again for this \
                                 request re-sends the same payment and never pays twice."
                            )));
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if !already_settled {
                        let quote = latest_quote(&ledger, &request_id).ok_or_else(|| {
                            ToolError::Other("the ledger has a payment without a quote".into())
                        })?;
                        let receipt = receipt(&request_id, &quote, &payment, &purchase);
                        ctx.record(
                            &mut ledger,
                            LedgerEntry::Paid {
                                request_id: request_id.clone(),
                                receipt: receipt.clone(),
                            },
                        )
                        .await?;
                        paid_now = true;
                        ctx.show_payment(receipt);
                    }
                    let png = base64::engine::general_purpose::STANDARD
                        .decode(purchase.image.image_base64.as_bytes())
                        .map_err(|e| {
                            ToolError::Other(format!(
                                "the image service sent an unreadable image ({e}); it is paid for \
                                 and calling generate_image again fetches it without paying again"
                            ))
                        })?;
                    let key = format!(
                        "{}/{}/{request_id}.png",
                        storage_id(&ctx.actor_id),
                        storage_id(&ctx.session_id)
                    );
                    let stored = self.images.put(&key, &png).await.map_err(|e| {
                        ToolError::Other(format!(
                            "{e}; the image is paid for and calling generate_image again fetches \
                             it without paying again"
                        ))
                    })?;
                    ctx.record(
                        &mut ledger,
                        LedgerEntry::Stored {
                            request_id: request_id.clone(),
                            image: StoredImage {
                                image_id: request_id.clone(),
                                key: stored.key,
                                url: stored.url,
                                prompt: req.prompt.clone(),
                            },
                        },
                    )
                    .await?;
                }
            }
        }
    }

    /// The seller answered `402` to a payment that was signed and sent. The
    /// chain decides what that means ([`crate::declined`]): refused (recorded
    /// as `Rejected`: no money moved), pending or unproven (left prepared,
    /// counted against the budget), or paid: recorded as `Paid` with the
    /// on-chain transaction, and its receipt returned so the caller re-sends
    /// the same payment to recover the content.
    async fn on_declined(
        &self,
        ctx: &TurnContext,
        ledger: &mut Vec<LedgerEntry>,
        request_id: &str,
        payment: &ledger::PreparedPayment,
        reason: &str,
    ) -> Result<PaymentReceipt, ToolError> {
        let nonce: alloy::primitives::B256 = payment.nonce.parse().map_err(|_| {
            ToolError::Other("the ledger holds a payment with an unreadable nonce".into())
        })?;
        let facts = self
            .wallet
            .authorization(payment.payer, nonce, payment.pay_to)
            .await
            .map_err(|e| {
                ToolError::Other(format!(
                    "the image service declined the payment ({reason}), and the chain could not be \
                     asked whether it settled ({e}). The payment stays pending and counted against \
                     the budget: calling generate_image again re-sends the same payment and never \
                     pays twice."
                ))
            })?;
        match declined::verdict(payment, &facts) {
            Verdict::Refused => {
                ctx.record(
                    ledger,
                    LedgerEntry::Rejected {
                        request_id: request_id.into(),
                        reason: declined::refused_reason(reason, &facts),
                    },
                )
                .await?;
                // It never settled and no longer can: it no longer counts
                // against the daily caps.
                let reservation = self.reservation(ctx, request_id, payment.amount);
                self.release(&reservation).await;
                Err(ToolError::Other(format!(
                    "the image service did not accept the payment ({reason}); the chain confirms \
                     it never settled and no longer can: no money moved."
                )))
            }
            Verdict::Pending { valid_before } => Err(ToolError::Other(format!(
                "the image service declined the payment ({reason}), but the signed authorization \
                 stays valid until {valid_before} (unix time) and may still settle, so the request \
                 is pending, not refused, and counted against the budget. Calling generate_image \
                 again for this request re-sends the same payment and never pays twice."
            ))),
            Verdict::UsedUnproven { transaction } => Err(ToolError::Other(format!(
                "the image service declined the payment ({reason}), but on chain the \
                 authorization was used (transaction {}) without a transfer of {} USDC to the \
                 seller being found. It is not treated as refused and stays counted against the \
                 budget.",
                transaction.as_deref().unwrap_or("not found"),
                payment.amount
            ))),
            Verdict::Paid { transaction } => {
                let quote = latest_quote(ledger, request_id).ok_or_else(|| {
                    ToolError::Other("the ledger has a payment without a quote".into())
                })?;
                let receipt = PaymentReceipt {
                    request_id: request_id.into(),
                    amount: payment.amount,
                    asset: quote.asset.to_checksum(None),
                    network: quote.network.v1_name().into(),
                    pay_to: payment.pay_to.to_checksum(None),
                    payer: payment.payer.to_checksum(None),
                    transaction_url: quote.network.explorer_tx_url(&transaction),
                    transaction,
                    resource: quote.resource.clone(),
                };
                ctx.record(
                    ledger,
                    LedgerEntry::Paid {
                        request_id: request_id.into(),
                        receipt: receipt.clone(),
                    },
                )
                .await?;
                Ok(receipt)
            }
        }
    }
}

/// A paid request whose content the seller does not deliver: exactly what
/// happened, for the user.
fn paid_not_delivered(receipt: &PaymentReceipt, reason: &str) -> String {
    format!(
        "this request is paid ({} USDC to {}, transaction {}) but the image service answered \
         \"{reason}\" instead of the image: content not received. Calling generate_image again \
         asks for it again with the same payment and never pays twice.",
        receipt.amount, receipt.pay_to, receipt.transaction
    )
}

fn latest_quote(ledger: &[LedgerEntry], request_id: &str) -> Option<ledger::Quote> {
    ledger.iter().rev().find_map(|e| match e {
        LedgerEntry::Quoted {
            request_id: r,
            quote,
            ..
        } if r == request_id => Some(quote.as_ref().clone()),
        _ => None,
    })
}

fn receipt(
    request_id: &str,
    quote: &ledger::Quote,
    payment: &ledger::PreparedPayment,
    purchase: &Purchase,
) -> PaymentReceipt {
    let transaction_url = if purchase.transaction.is_empty() {
        purchase.image.transaction_url.clone()
    } else {
        quote.network.explorer_tx_url(&purchase.transaction)
    };
    PaymentReceipt {
        request_id: request_id.into(),
        amount: payment.amount,
        asset: quote.asset.to_checksum(None),
        network: quote.network.v1_name().into(),
        pay_to: payment.pay_to.to_checksum(None),
        payer: purchase.payer.clone(),
        transaction: purchase.transaction.clone(),
        transaction_url,
        resource: quote.resource.clone(),
    }
}
