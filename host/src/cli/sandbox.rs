//! `scimlink sandbox-sp`: a simulated SCIM application to provision into.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::sandbox::sp::{Quirks, SandboxSp};

#[derive(Debug, Args)]
pub struct SandboxSpArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Refuse PATCH: updates must be PUTs.
    #[arg(long)]
    put_only: bool,
    /// Accept PATCH only when it sets `active`.
    #[arg(long)]
    patch_active_only: bool,
    /// The most member values one group PATCH may carry.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_members_per_patch: Option<u32>,
    /// Compare filter strings case-sensitively.
    #[arg(long)]
    case_sensitive_filters: bool,
    /// Fraction of requests answered 429 with Retry-After (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    too_many_requests_rate: f64,
    /// The Retry-After of those answers, in seconds.
    #[arg(long, default_value_t = 1)]
    retry_after_seconds: u64,
    /// Fraction of requests answered 503 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    server_error_rate: f64,
    /// Requests per second at most, over every tenant; beyond it, 429 with
    /// Retry-After.
    #[arg(long)]
    rate_limit: Option<f64>,
    /// Requests the rate limit lets through at once (one second's worth
    /// by default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rate_burst: Option<u32>,
    /// The least time, in milliseconds, every answer takes.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer like Entra ID-era applications: PATCH answers 204 without a
    /// body, lists lack startIndex and itemsPerPage, resources lack meta,
    /// errors are {"error": {"code", "message"}}.
    #[arg(long)]
    entra_style: bool,
    /// Hold at most this many resources in one list page, whatever
    /// `count` asks.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    page_size_limit: Option<u32>,
    /// Leave totalResults out of list answers.
    #[arg(long)]
    omit_total_results: bool,
    /// Start every list page at the first resource, whatever startIndex
    /// asks.
    #[arg(long)]
    ignore_start_index: bool,
    /// Serve only this tenant path (e.g. `acme/scim/v2`); repeatable. Any
    /// path is a tenant of its own when none is given.
    #[arg(long = "tenant")]
    tenants: Vec<String>,
    /// Accept only this bearer token; repeatable. Any request is accepted
    /// when none is given.
    #[arg(long = "token", env = "SCIMLINK_SANDBOX_TOKEN")]
    tokens: Vec<String>,
    /// Seed of the injected faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Requests kept in the log (GET /_sandbox/requests).
    #[arg(long, default_value_t = 10_000)]
    log_limit: usize,
    /// Refuse passwords shorter than this (400, without repeating them).
    #[arg(long, default_value_t = 0)]
    password_min_length: usize,
    /// Refuse passwords mixing fewer of these classes: lowercase,
    /// uppercase, digits, other characters (0–4).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=4))]
    password_classes: u8,
}

impl SandboxSpArgs {
    fn quirks(&self) -> Quirks {
        Quirks {
            put_only: self.put_only,
            patch_active_only: self.patch_active_only,
            max_members_per_patch: self.max_members_per_patch.map(|n| n as usize),
            case_sensitive_filters: self.case_sensitive_filters,
            too_many_requests_rate: self.too_many_requests_rate,
            retry_after_seconds: self.retry_after_seconds,
            server_error_rate: self.server_error_rate,
            rate_limit: self.rate_limit,
            rate_burst: self.rate_burst,
            latency: Duration::from_millis(self.latency_ms),
            entra_style: self.entra_style,
            page_size_limit: self.page_size_limit.map(|n| n as usize),
            omit_total_results: self.omit_total_results,
            ignore_start_index: self.ignore_start_index,
            tenants: self.tenants.clone(),
            tokens: self.tokens.clone(),
            seed: self.seed,
            log_limit: self.log_limit,
            password_min_length: self.password_min_length,
            password_classes: self.password_classes,
        }
    }
}

pub fn run(args: SandboxSpArgs) -> anyhow::Result<ExitCode> {
    let quirks = args.quirks();
    quirks.check()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        let sp = SandboxSp::start(args.listen, quirks.clone())
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let base = format!("http://{}", sp.address());
        println!("sandbox SCIM application listening on {base}");
        match quirks.tenants.as_slice() {
            [] => println!("  base URL        {base}/scim/v2 (any path before /Users is a tenant)"),
            tenants => {
                for tenant in tenants {
                    println!("  base URL        {}", sp.base_url(tenant));
                }
            }
        }
        println!("  request log     {base}/_sandbox/requests");
        println!("  quirks          {}", serde_json::to_string(&quirks)?);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = tokio::signal::ctrl_c().await;
        drop(sp);
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
