//! The start-up table and the agent's tables (one paid image split, model
//! calls, many sessions at once).

use std::{fmt::Write as _, time::Duration};

use super::{Report, median_duration, mib};
use crate::bench::{
    agent::Split,
    stats::{ms, ratio, thousands},
};

impl Report {
    pub(super) fn startup_table(&self, s: &mut String) {
        let Some(st) = &self.startup else { return };
        let _ = writeln!(s, "## Start-up, memory, size\n");
        let _ = writeln!(
            s,
            "Measured: process start to the first healthy answer (agent `/ping`, gateway \
             `/health`), polled every millisecond, median of the samples; resident memory after \
             ten requests.\n"
        );
        let _ = writeln!(
            s,
            "| | median start -> healthy | x no-op process | idle RSS | binary |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| no-op process (`true`), baseline | {} | 1.0 | | |",
            ms(st.noop)
        );
        for (name, x, size) in [
            ("agent", &st.agent, st.agent_size),
            ("gateway", &st.gateway, st.gateway_size),
        ] {
            let _ = writeln!(
                s,
                "| {name} | {} | {:.1} | {} | {:.1} MiB |",
                ms(x.median),
                ratio(x.median, st.noop),
                mib(x.rss_kib),
                size as f64 / (1024.0 * 1024.0)
            );
        }
        s.push('\n');
    }

    pub(super) fn agent_tables(&self, s: &mut String) {
        if let Some(splits) = &self.split {
            let med = |f: &dyn Fn(&Split) -> Duration| median_duration(splits.iter().map(f));
            let total = med(&|x| x.total);
            let _ = writeln!(
                s,
                "## One paid image through the agent, concurrency 1 ({} runs, medians)\n",
                splits.len()
            );
            let _ = writeln!(
                s,
                "Measured: a client asks the agent for an image; timing proxies between agent \
                 and gateway and between gateway and facilitator split the time; generation is \
                 the gateway's logged `generate_ms`.\n"
            );
            let _ = writeln!(s, "| part | time | share of total |");
            let _ = writeln!(s, "|---|---:|---:|");
            for (name, d) in [
                ("total (client -> agent -> answer)", total),
                (
                    "agent's own time (tool loop, offline model, ledger, storage)",
                    med(&|x| x.agent_own()),
                ),
                ("quote (unpaid request -> 402)", med(&|x| x.quote)),
                ("facilitator /verify", med(&|x| x.verify)),
                ("facilitator /settle (incl. the chain)", med(&|x| x.settle)),
                (
                    "generation (the gateway's local PNG renderer, 1024x1024)",
                    med(&|x| x.generation),
                ),
                (
                    "gateway's own overhead on the paid request (minus facilitator and generation)",
                    med(&|x| x.gateway_own()),
                ),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {:.0}% |",
                    ms(d),
                    100.0 * ratio(d, total)
                );
            }
            let ours = med(&|x| x.agent_own() + x.gateway_own());
            let _ = writeln!(
                s,
                "\nOverhead we control (agent + gateway, without generation): {} of {} ({:.0}%); \
                 the rest is generation, the facilitator and the chain.\n",
                ms(ours),
                ms(total),
                100.0 * ratio(ours, total)
            );
        }
        if let Some(l) = &self.load {
            let _ = writeln!(
                s,
                "## Paid images through the agent, concurrency {} (one session each)\n",
                l.sessions
            );
            let _ = writeln!(
                s,
                "Measured: {} sessions start at once, each asks for one image; settlements are \
                 counted on chain; the agent's RSS is sampled every 10 ms while they run.\n",
                l.sessions
            );
            let _ = writeln!(
                s,
                "| successes | settlements on chain | USDC spent | p50 | p99 | throughput | agent RSS idle | agent RSS peak under load |"
            );
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|");
            let _ = writeln!(
                s,
                "| {} / {} | {} | {}.{:06} | {} | {} | {} images/s | {} | {} |",
                l.successes,
                l.sessions,
                l.settlements,
                l.spent_atomic / 1_000_000,
                l.spent_atomic % 1_000_000,
                ms(l.p50),
                ms(l.p99),
                thousands(l.successes as f64 / l.wall.as_secs_f64()),
                mib(l.rss_idle_kib),
                mib(l.rss_peak_kib),
            );
            let verdict = if l.settlements == l.successes {
                "equal, as they must be"
            } else {
                "NOT EQUAL: a money bug"
            };
            let _ = writeln!(s, "\nSettlements vs successes: {verdict}.\n");
        }
        if let Some((within, consent)) = &self.usage {
            let _ = writeln!(s, "## Model calls per paid image\n");
            let _ = writeln!(s, "| path | model calls | input tokens | output tokens |");
            let _ = writeln!(s, "|---|---:|---:|---:|");
            for (name, u) in [
                ("within budget (one tool call pays and generates)", within),
                ("consent path (ask, user says yes, pay)", consent),
            ] {
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} |",
                    u.model_calls, u.input_tokens, u.output_tokens
                );
            }
            let _ = writeln!(
                s,
                "\nTokens are the offline model's estimates (characters / 4); the calls are exact. \
                 The original sample's prompt drives five model calls per image.\n"
            );
        }
    }
}
