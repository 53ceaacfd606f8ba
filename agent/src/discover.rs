//! `crowsnest discover`: what discovery finds on this node and how it would
//! scrape it; a user's first debugging step on a new cluster.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crowsnest::config::{self, Auth, Credential, ScrapeConfig};
use crowsnest::discovery::{Discovered, Report, discover, jobs};
use crowsnest::http::HttpClient;
use crowsnest::scrape::fetch::Source;
use crowsnest::scrape::target::resolve;

/// Runs one discovery pass and prints it; with `scrape`, fetches every target once.
pub fn run(config_path: Option<&Path>, scrape: bool) -> anyhow::Result<ExitCode> {
    let cfg = config::load(config_path)?;
    let node = cfg
        .discovery
        .node_name
        .clone()
        .unwrap_or_else(crowsnest::app::node_name);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // No pod watch from the command line: manifests and probes only.
        let report = discover(&cfg.discovery, &[]).await;
        print_report(&cfg, &node, &report);
        let discovered = jobs::scrape_configs(&report.targets, &cfg.discovery, &cfg.global, &node)?;
        let merged = jobs::merge(&cfg.scrape_configs, discovered.clone());
        println!("\njobs that would run (user jobs first):");
        for job in &merged {
            let origin = if discovered.iter().any(|d| d.job_name == job.job_name)
                && !cfg
                    .scrape_configs
                    .iter()
                    .any(|u| u.job_name == job.job_name)
            {
                "discovered"
            } else {
                "scrape_configs"
            };
            println!(
                "  {} ({origin}): {}",
                job.job_name,
                targets_of(job).join(" ")
            );
            if scrape && origin == "discovered" {
                scrape_job(job).await;
            }
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(cfg: &config::Config, node: &str, report: &Report) {
    let d = &cfg.discovery;
    println!("node: {node}");
    if !d.enabled {
        println!("discovery is disabled (discovery.enabled: false)");
        return;
    }
    println!("static pod manifests: {}", d.manifests_path.display());
    for p in &report.problems {
        println!("  skipped: {p}");
    }
    println!("\ndiscovered targets:");
    if report.targets.is_empty() {
        println!("  none");
    }
    for t in &report.targets {
        print_target(t);
    }
    println!("\nprobes of well-known ports on {}:", d.probe_address);
    if report.probes.is_empty() {
        println!("  none (every enabled component was named by a manifest, or has no ports)");
    }
    for p in &report.probes {
        println!(
            "  {:<24} {:<32} {}{}",
            p.component,
            p.target,
            p.result,
            explain(p.result)
        );
    }
    let off: Vec<&str> = d
        .components
        .iter()
        .filter(|c| !c.enabled)
        .map(|c| c.component.job())
        .collect();
    if !off.is_empty() {
        println!("disabled components: {}", off.join(", "));
    }
}

/// What a probe result means for someone reading the output.
fn explain(result: &str) -> &'static str {
    match result {
        "found" => "",
        "found_refused" => " (it answered 401/403: check the token and the ClusterRole)",
        "not_component" => " (something answers there, but not this component)",
        "config" => " (the CA or client certificate files are not readable here)",
        "credentials" => " (the token file is not readable here)",
        "connection_refused" => " (nothing listens)",
        _ => "",
    }
}

fn print_target(t: &Discovered) {
    let s = t.status();
    let urls: Vec<String> = s
        .metrics_paths
        .iter()
        .map(|p| format!("{}://{}{p}", s.scheme, s.address))
        .collect();
    println!("  {:<24} {:<9} {}", s.component, s.source, urls.join(" "));
    println!("    from: {}", s.origin);
    let tls = &t.http.tls;
    if s.scheme == "https" {
        let verify = if tls.insecure_skip_verify {
            "not verified (insecure_skip_verify)".to_owned()
        } else {
            tls.ca_file.as_ref().map_or_else(
                || "verified against the system roots".to_owned(),
                |ca| format!("verified against {}", ca.display()),
            )
        };
        println!("    server certificate: {verify}");
    }
    if let (Some(c), Some(k)) = (&tls.cert_file, &tls.key_file) {
        println!(
            "    client certificate: {} (key {})",
            c.display(),
            k.display()
        );
    }
    if let Some(Auth::Authorization {
        kind,
        credential: Credential::File(f),
    }) = &t.http.auth
    {
        println!("    authorization: {kind} token from {}", f.display());
    }
    if let Some(note) = &s.note {
        println!("    note: {note}");
    }
}

fn targets_of(job: &ScrapeConfig) -> Vec<String> {
    resolve(job)
        .targets
        .iter()
        .map(|t| t.display_url())
        .collect()
}

async fn scrape_job(job: &ScrapeConfig) {
    let client = match HttpClient::new(&job.http) {
        Ok(c) => c,
        Err(e) => {
            println!("    cannot build the client: {e}");
            return;
        }
    };
    for t in resolve(job).targets {
        let result = Source::Http(client.clone())
            .fetch(&t.url, job.scrape_timeout.min(Duration::from_secs(10)), 0)
            .await;
        match result {
            Ok(f) => println!("    {}: ok, {} bytes", t.display_url(), f.body.len()),
            Err(e) => println!("    {}: {} ({e})", t.display_url(), e.kind()),
        }
    }
}
