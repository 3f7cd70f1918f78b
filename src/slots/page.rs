//! `GET /environments` for a browser: each environment's slots, who holds
//! them since and until when, and who waits. Every value is escaped.

use super::Millis;
use super::server::EnvironmentView;
use crate::history::escape;

/// `4m 10s`.
fn span(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// The page; `now` for "since" and "in" columns.
pub fn render(environments: &[EnvironmentView], now: Millis) -> String {
    let now_s = now / 1000;
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\">\
         <title>ripple slots</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
         table{border-collapse:collapse;margin-bottom:1.5em}\
         th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left}\
         th{background:#f3f3f3}.free{color:#2a7a2a}.held{color:#a33}\
         </style></head><body>\n<h1>Environment slots</h1>\n",
    );
    if environments.is_empty() {
        html.push_str("<p>No environments are configured.</p>\n");
    }
    for env in environments {
        html.push_str(&format!(
            "<h2 id=\"env-{0}\">{0}</h2>\n<p>ttl {1}; {2} of {3} slots held; {4} waiting</p>\n\
             <table><thead><tr><th>slot</th><th>holder</th><th>token</th><th>since</th>\
             <th>until</th></tr></thead><tbody>\n",
            escape(&env.name),
            span(env.ttl),
            env.slots.iter().filter(|s| s.lease.is_some()).count(),
            env.slots.len(),
            env.waiting.len(),
        ));
        for slot in &env.slots {
            match &slot.lease {
                Some(lease) => html.push_str(&format!(
                    "<tr class=\"held\"><td>{}</td><td class=\"holder\">{}</td><td>{}</td>\
                     <td>{} ({} ago)</td><td>{} (in {})</td></tr>\n",
                    escape(&slot.name),
                    escape(&lease.holder),
                    lease.token,
                    super::utc(lease.since * 1000),
                    span(now_s.saturating_sub(lease.since)),
                    super::utc(lease.expires * 1000),
                    span(lease.expires.saturating_sub(now_s)),
                )),
                None => html.push_str(&format!(
                    "<tr class=\"free\"><td>{}</td><td colspan=\"4\">free</td></tr>\n",
                    escape(&slot.name)
                )),
            }
        }
        html.push_str("</tbody></table>\n");
        if !env.waiting.is_empty() {
            html.push_str("<p>Waiting, first first:</p><ol class=\"waiting\">\n");
            for waiter in &env.waiting {
                html.push_str(&format!(
                    "<li>{} (for {})</li>\n",
                    escape(&waiter.holder),
                    span(now_s.saturating_sub(waiter.since))
                ));
            }
            html.push_str("</ol>\n");
        }
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slots::server::{LeaseView, SlotView};

    #[test]
    fn holders_are_shown_and_escaped() {
        let env = EnvironmentView {
            name: "uat".into(),
            ttl: 600,
            slots: vec![
                SlotView {
                    name: "uat-1".into(),
                    lease: Some(LeaseView {
                        id: 1,
                        holder: "<script>alert(1)</script>".into(),
                        token: 7,
                        since: 1000,
                        expires: 1600,
                    }),
                },
                SlotView {
                    name: "uat-2".into(),
                    lease: None,
                },
            ],
            waiting: Vec::new(),
        };
        let page = render(&[env], 1_300_000);
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("1 of 2 slots held"));
        assert!(page.contains("(5m 0s ago)"));
    }
}
