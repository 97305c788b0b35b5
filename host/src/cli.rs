//! The `dss` command line: `serve`, `config`, `doctor`, `nginx-conf`,
//! `providers list|check|new`, `mobile-send`.

use crate::config::{Config, InstanceConfig};
use crate::plugin::{CallReport, PluginEngine, ProviderModule};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Dynamic Stream Server: on-demand video restreaming with Wasm providers.
#[derive(Debug, Parser)]
#[command(name = "dss", version)]
pub struct Cli {
    /// The configuration file (default: ./dss.toml when it exists).
    #[arg(long, short, global = true, env = "DSS_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the host.
    Serve {
        /// Address of the HTTP API (overrides `listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Prints the effective configuration.
    Config,
    /// Checks the installation: nginx and its RTMP module, FFmpeg (5 or
    /// later, with the protocols the instances use), free ports, the
    /// state and modules directories and the state's ownership and modes,
    /// the store, every provider instance (as `providers check` does). One
    /// line each (ok, warn or FAIL, with the fix); exits 1 on a failure.
    /// Run it as the user the host runs as.
    Doctor,
    /// Prints the nginx configuration rendered for this host (for running
    /// nginx yourself with `[nginx] managed = false`).
    NginxConf,
    /// Provider modules and instances.
    Providers {
        /// What to do with them.
        #[command(subcommand)]
        command: ProvidersCommand,
    },
    /// Streams a media file, or `test` for a test pattern, to a mobile
    /// ingest the way a phone does (the reference sender). Prints `id: ID`
    /// once the session id is known and a `sent ...` summary at the end.
    MobileSend(MobileSendArgs),
    /// Compiles a provider component (on stdin) into a compile cache: run
    /// by `dss serve` itself, so that the compiler's memory stays out of
    /// the serving process.
    #[command(hide = true)]
    CompileModule {
        /// The compile cache directory.
        #[arg(long)]
        dir: PathBuf,
        /// The artifact's file name in it.
        #[arg(long)]
        name: String,
        /// For an engine without the pooling allocator.
        #[arg(long)]
        on_demand: bool,
    },
}

/// `dss mobile-send ...`.
#[derive(Debug, clap::Args)]
pub struct MobileSendArgs {
    /// A media file, or `test` for FFmpeg's test pattern and a tone
    /// (`./test` for a file of that name).
    pub file: PathBuf,
    /// The TCP ingest's HOST:PORT (default 127.0.0.1:9995), or with
    /// `--http` the host's HTTP address (default 127.0.0.1:8000).
    #[arg(long)]
    pub server: Option<String>,
    /// The session id to resume (default: the state file's for this
    /// server; else the server assigns one, or `--http` makes one).
    #[arg(long)]
    pub id: Option<String>,
    /// The publish token.
    #[arg(long, env = "DSS_MOBILE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Waypoints "LAT,LON;LAT,LON;..." followed at `--speed` and looped
    /// (one waypoint: a fixed position). Default: a small loop in Rio.
    #[arg(long, conflicts_with = "gpx", allow_hyphen_values = true)]
    pub route: Option<String>,
    /// A GPX file whose trkpt/rtept/wpt points are sent one a second,
    /// looped.
    #[arg(long)]
    pub gpx: Option<PathBuf>,
    /// Speed along `--route` (and the default loop), in m/s.
    #[arg(long, default_value_t = 15.0)]
    pub speed: f64,
    /// Use the HTTP ingest: one muxed MPEG-TS body to /mobile/ID and
    /// positions to /mobile/ID/position.
    #[arg(long)]
    pub http: bool,
    /// Stop after this many seconds of streaming.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<std::time::Duration>,
    /// Send no audio.
    #[arg(long)]
    pub video_only: bool,
    /// Label video as audio and audio as video, as the original reference
    /// sender did.
    #[arg(long)]
    pub swap_types: bool,
    /// The state file keeping the session id per server (default:
    /// $XDG_STATE_HOME/dss/mobile-send.json or
    /// ~/.local/state/dss/mobile-send.json).
    #[arg(long, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Largest frame payload (phones send ~512 bytes).
    #[arg(long, value_name = "BYTES", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub chunk: u32,
}

fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

/// `dss providers ...`.
#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// Lists the modules and instances the configuration points at.
    List,
    /// Loads a module, checks its interface, runs init and list-streams,
    /// and runs the FFmpeg policy on every listed stream. Exits non-zero
    /// when the policy refuses a stream (each printed as a REFUSED line
    /// with its reason).
    Check {
        /// The `.wasm` component.
        file: PathBuf,
        /// An instance file whose `[config]`, `allow_hosts`, `allow_sources`,
        /// `allow_private`, FFmpeg option overrides and limits to use.
        #[arg(long = "instance", short = 'i', alias = "config-file")]
        instance: Option<PathBuf>,
    },
    /// Creates a provider crate that builds and passes `check` unchanged.
    New {
        /// The provider's name (lowercase, digits, '-'); also the module name.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The provider SDK (default: ./provider-sdk, or the repository the
        /// `dss` binary was built in).
        #[arg(long)]
        sdk: Option<PathBuf>,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::scaffold::Lang,
    },
}

/// The configuration file to use: the flag, else `./dss.toml` if present.
pub fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        let p = PathBuf::from("dss.toml");
        p.exists().then_some(p)
    })
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // The sender is a client: it needs no host configuration.
    let command = match cli.command {
        Command::MobileSend(args) => return mobile_send(args).await,
        // The daemon's compiler: no configuration either.
        Command::CompileModule {
            dir,
            name,
            on_demand,
        } => return crate::plugin::compile::child_main(&dir, &name, !on_demand),
        command => command,
    };
    let path = config_path(cli.config);
    if let Command::Doctor = command {
        let code = crate::doctor::run(path.as_deref(), &mut std::io::stdout()).await;
        if code != 0 {
            bail!("dss doctor found failures (the FAIL lines above)");
        }
        return Ok(());
    }
    let mut config = Config::load(path.as_deref())?;
    match command {
        Command::Serve { listen } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            crate::server::serve(config).await
        }
        Command::Config => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::NginxConf => {
            let mut config = config;
            // As `dss serve` would run it: workers as the media user.
            config.security.media_user =
                crate::privileges::MediaUser::for_this_process(config.security.run_as.as_deref())?;
            let managed = crate::nginx::managed::decide(&config).unwrap_or(false);
            print!("{}", crate::nginx::conf::render(&config, managed)?);
            Ok(())
        }
        Command::MobileSend(args) => mobile_send(args).await,
        Command::CompileModule { .. } | Command::Doctor => unreachable!("handled above"),
        Command::Providers { command } => match command {
            ProvidersCommand::List => list(&config).await,
            ProvidersCommand::Check { file, instance } => {
                check(&config, &file, instance.as_deref()).await
            }
            ProvidersCommand::New {
                name,
                dir,
                sdk,
                lang,
            } => {
                let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
                let sdk = crate::scaffold::find_sdk(sdk.as_deref(), lang)?;
                crate::scaffold::create(&name, &dir, &sdk, lang)?;
                println!(
                    "created provider {name} in {} (SDK: {})",
                    dir.display(),
                    sdk.display()
                );
                println!("next: cd {} && {}", dir.display(), lang.next_steps());
                Ok(())
            }
        },
    }
}

async fn mobile_send(args: MobileSendArgs) -> anyhow::Result<()> {
    use crate::mobile::route;
    use crate::sender;
    let route = match (&args.route, &args.gpx) {
        (Some(r), _) => route::Route::follow(route::parse_waypoints(r)?, args.speed)?,
        (None, Some(gpx)) => route::Route::steps(route::read_gpx(gpx)?)?,
        (None, None) => route::Route::default_loop(args.speed)?,
    };
    let mut opts = sender::SendOptions::new(sender::Input::from_arg(args.file), route);
    opts.server = args.server;
    opts.id = args.id;
    opts.token = args.token;
    opts.http = args.http;
    opts.duration = args.duration;
    opts.video_only = args.video_only;
    opts.swap_types = args.swap_types;
    opts.state = args.state;
    opts.chunk = args.chunk as usize;
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No SIGINT handler: run until another end.
            std::future::pending::<()>().await;
        }
    };
    let report = sender::run(&opts, &mut std::io::stdout(), ctrl_c).await;
    report.end.map(|_| ()).map_err(Into::into)
}

fn engine(config: &Config) -> anyhow::Result<Arc<PluginEngine>> {
    // A short-lived command: the compiler's memory goes with it.
    PluginEngine::from_config(config, crate::plugin::compile::Compiler::InProcess)
        .map_err(|e| anyhow::anyhow!("cannot create the Wasm engine: {e:?}"))
}

async fn list(config: &Config) -> anyhow::Result<()> {
    let engine = engine(config)?;
    let dirs = config.providers.modules_dirs();
    let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    println!("modules in {}:", shown.join(" and "));
    for d in &dirs {
        if !d.is_dir() {
            println!("  (no directory {})", d.display());
        }
    }
    let files: Vec<PathBuf> = crate::providers::module_files(&config.providers)
        .into_values()
        .collect();
    for f in files {
        let (engine, limits, p) = (engine.clone(), config.providers.limits.clone(), f.clone());
        let loaded =
            tokio::task::spawn_blocking(move || ProviderModule::load(&engine, &p, &limits)).await?;
        match loaded {
            Ok(m) => println!(
                "  {:<16} {} {} (interface {}, sha256 {})",
                m.name,
                m.info.name,
                m.info.version,
                m.interface_version,
                &m.hash[..12]
            ),
            Err(e) => println!("  {:<16} REJECTED: {e}", stem(&f)),
        }
    }
    let dir = &config.providers.instances_dir;
    println!("instances in {}:", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for f in files {
        match InstanceConfig::load(&f) {
            Ok((id, inst)) => println!(
                "  {:<16} module {}{}",
                id,
                inst.module,
                if inst.enabled { "" } else { " (disabled)" }
            ),
            Err(e) => println!("  {:<16} INVALID: {e}", stem(&f)),
        }
    }
    Ok(())
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn print_report(what: &str, r: &CallReport) {
    println!(
        "  {what}: {:.2} ms wall, {:.2} ms guest, peak memory {} KiB, {} http requests",
        r.wall.as_secs_f64() * 1e3,
        r.guest.as_secs_f64() * 1e3,
        r.peak_memory / 1024,
        r.http_requests
    );
}

async fn check(config: &Config, file: &Path, instance: Option<&Path>) -> anyhow::Result<()> {
    let engine = engine(config)?;
    let instance = instance.map(InstanceConfig::load).transpose()?;
    let config = config.clone();
    let file = file.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || {
        crate::providers::check::check(&engine, &config, &file, instance.as_ref())
            .map(|c| (file, c))
    })
    .await??;
    let (file, c) = checked;
    print_module(&file, &c.module, &c.limits);
    match &c.init {
        Ok(r) => print_report("init", r),
        Err(message) => {
            println!("  init with an empty configuration: {message}");
            println!("  (module is valid; pass --instance NAME.toml to list its streams)");
        }
    }
    match &c.listing {
        Some(Ok(l)) => {
            print_report("list-streams", &l.report);
            print_listing(&l.entries, &l.warnings)
        }
        Some(Err(e)) => bail!("list-streams failed: {e}"),
        None => Ok(()),
    }
}

/// What `dss check` tells of a module: its file, name, interface, hash and
/// the limits it runs under.
fn print_module(file: &Path, module: &ProviderModule, limits: &crate::config::Limits) {
    println!("{}", file.display());
    println!(
        "  provider {} {} — {}",
        module.info.name, module.info.version, module.info.description
    );
    println!(
        "  interface dss:provider@{}, sha256 {}",
        module.interface_version, module.hash
    );
    println!(
        "  limits: {} ms guest time, {} MiB memory, {} streams, {} http-get of {} bytes / {} ms",
        limits.call_timeout_ms,
        limits.memory_mib,
        limits.max_streams,
        limits.http_max_requests,
        limits.http_max_body,
        limits.http_timeout_ms
    );
}

/// What `dss check` tells of a listing: its first streams, the warnings,
/// and every stream the FFmpeg policy refuses (an error if any).
fn print_listing(
    entries: &[crate::catalog::StreamEntry],
    warnings: &[String],
) -> anyhow::Result<()> {
    println!("  {} streams:", entries.len());
    for e in entries.iter().take(50) {
        let geo = e
            .geo
            .map(|g| format!(" @{:.5},{:.5}", g.lat, g.lon))
            .unwrap_or_default();
        println!(
            "    {:<24} {:<28} {}{}{}",
            e.id,
            e.name,
            e.source,
            geo,
            if e.online { "" } else { " (offline)" }
        );
    }
    if entries.len() > 50 {
        println!("    ... {} more", entries.len() - 50);
    }
    for w in warnings {
        println!("  warning: {w}");
    }
    let refused: Vec<_> = entries
        .iter()
        .filter_map(|e| Some((&e.id, e.refusal()?)))
        .collect();
    for (id, why) in refused.iter().take(50) {
        println!("  REFUSED {id}: {why}");
    }
    if refused.len() > 50 {
        println!("  ... {} more refused", refused.len() - 50);
    }
    if !refused.is_empty() {
        bail!(
            "the FFmpeg policy refuses {} of {} streams (see the REFUSED lines)",
            refused.len(),
            entries.len()
        );
    }
    Ok(())
}
