//! The `ripple slots serve` and `ripple slot ...` command lines: reading
//! their files and environment, then handing over to the server or the
//! client.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::client::{self, Client};
use super::{Environment, parse_duration, server};
use crate::cli::{SlotArgs, SlotCommand, SlotLeaseArgs, SlotsArgs, SlotsCommand};
use crate::error::{Error, Result, exit};
use crate::manifest::Manifest;

fn read(path: &Path, action: &'static str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    })
}

/// `ripple slots serve`.
pub fn slots(args: SlotsArgs) -> Result<u8> {
    let SlotsCommand::Serve(args) = args.command;
    let text = read(&args.config, "read the slots configuration")?;
    let manifest = Manifest::parse(&text, &args.config.display().to_string())?;
    if manifest.environments.is_empty() {
        return Err(Error::Usage {
            message: format!("`{}` defines no `[[environment]]`", args.config.display()),
            hint: Some("add `[[environment]]` tables with `name`, `slots` and `ttl`".into()),
        });
    }
    let keys: Vec<String> = read(&args.keys_file, "read the keys file")?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(Error::Usage {
            message: format!("the keys file `{}` has no key", args.keys_file.display()),
            hint: Some("write one API key a line".into()),
        });
    }
    server::run(server::Config {
        listen: args.listen,
        data_dir: args.data_dir,
        environments: manifest
            .environments
            .into_iter()
            .map(|e| Environment {
                name: e.name,
                slots: e.slots,
                ttl_s: e.ttl_s,
                from_maybe: false,
            })
            .collect(),
        keys,
    })?;
    Ok(exit::OK)
}

/// Who holds a slot, by default: the CI build, else user@host.
fn default_holder() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(repo), Some(build)) = (var("DRONE_REPO"), var("DRONE_BUILD_NUMBER")) {
        return format!("{repo}#{build}");
    }
    if let Some(url) = var("CI_JOB_URL").or_else(|| var("CI_PIPELINE_URL")) {
        return url;
    }
    if let (Some(repo), Some(run)) = (var("GITHUB_REPOSITORY"), var("GITHUB_RUN_ID")) {
        return format!("{repo}#{run}");
    }
    let user = var("USER").unwrap_or_else(|| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// The lease `--lease`, `--from FILE` or `RIPPLE_SLOT_LEASE` names.
fn lease_of(args: &SlotLeaseArgs) -> Result<u64> {
    let text = match (&args.lease, &args.from) {
        (Some(lease), _) => format!("RIPPLE_SLOT_LEASE={lease}"),
        (None, Some(path)) => read(path, "read the slot file")?,
        (None, None) => format!(
            "RIPPLE_SLOT_LEASE={}",
            std::env::var("RIPPLE_SLOT_LEASE").unwrap_or_default()
        ),
    };
    client::value_of(&text, "RIPPLE_SLOT_LEASE")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Usage {
            message: "no lease to act on".into(),
            hint: Some(
                "pass `--lease ID`, `--from FILE` (what `acquire --output` wrote), or set \
                 RIPPLE_SLOT_LEASE"
                    .into(),
            ),
        })
}

fn duration(text: &str, flag: &str) -> Result<Duration> {
    parse_duration(text)
        .map(Duration::from_secs)
        .map_err(|message| Error::Usage {
            message: format!("`{flag}`: {message}"),
            hint: None,
        })
}

/// `ripple slot acquire|renew|release`.
pub fn slot(args: SlotArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8> {
    let url = args
        .url
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::Usage {
            message: "no slots server given".into(),
            hint: Some(
                "set RIPPLE_SLOTS_URL (or `--url`) to `http://HOST:PORT` of `ripple slots serve`"
                    .into(),
            ),
        })?;
    let client = Client::new(&url, args.key.filter(|k| !k.is_empty()))?;
    match args.command {
        SlotCommand::Acquire(acquire) => {
            let wait = duration(&acquire.wait, "--wait")?;
            let holder = acquire.holder.unwrap_or_else(default_holder);
            let granted = client.acquire(&acquire.environment, &holder, wait, err)?;
            let lines = client::lines(&granted);
            if let Some(path) = &acquire.output {
                crate::output::write_atomically(path, &lines)?;
            }
            let _ = writeln!(
                err,
                "ripple slot: holding `{}` of `{}` (lease {}, token {}) for {}; renew within {}s",
                granted.slot,
                granted.environment,
                granted.lease,
                granted.token,
                holder,
                granted.ttl
            );
            out.write_all(lines.as_bytes())
                .map_err(|source| Error::Io {
                    action: "write",
                    path: "<stdout>".into(),
                    source,
                })?;
            Ok(exit::OK)
        }
        SlotCommand::Renew(renew) => {
            let Some(every) = renew.every.as_deref() else {
                let lease = lease_of(&renew.lease)?;
                return match client.renew(lease)? {
                    Some(granted) => {
                        let _ = writeln!(
                            err,
                            "ripple slot: lease {lease} renewed until {}",
                            super::utc(granted.expires * 1000)
                        );
                        Ok(exit::OK)
                    }
                    None => Err(Error::Slot {
                        message: format!("lease {lease} is gone (released, or expired at its ttl)"),
                        hint: Some("acquire a slot again".into()),
                        exit: exit::USER,
                    }),
                };
            };
            let every = duration(every, "--every")?;
            // A heartbeat may start before the slot is taken: wait for the
            // file (and stop when it is removed).
            if let Some(path) = &renew.lease.from {
                while !path.exists() {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            let lease = lease_of(&renew.lease)?;
            loop {
                std::thread::sleep(every);
                if renew.lease.from.as_ref().is_some_and(|p| !p.exists()) {
                    let _ = writeln!(err, "ripple slot: the slot file is gone; heartbeat stops");
                    return Ok(exit::OK);
                }
                match client.renew(lease) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        let _ = writeln!(
                            err,
                            "ripple slot: lease {lease} is released; heartbeat stops"
                        );
                        return Ok(exit::OK);
                    }
                    // The server may be restarting: the lease outlives
                    // a short gap.
                    Err(e) => {
                        let _ = writeln!(err, "ripple slot: {}", e.report());
                    }
                }
            }
        }
        SlotCommand::Release(release) => {
            // A release that runs after a failed acquire has nothing to do.
            if release.lease.as_deref() == Some("") {
                let _ = writeln!(err, "ripple slot: no slot was taken; nothing to release");
                return Ok(exit::OK);
            }
            if let Some(path) = release.from.as_ref().filter(|p| !p.exists()) {
                let _ = writeln!(
                    err,
                    "ripple slot: no slot was taken ({} is missing); nothing to release",
                    path.display()
                );
                return Ok(exit::OK);
            }
            let lease = lease_of(&release)?;
            client.release(lease)?;
            let _ = writeln!(err, "ripple slot: lease {lease} released");
            Ok(exit::OK)
        }
    }
}
