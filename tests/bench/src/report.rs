//! Figures: percentiles, the table on stdout, the generated part of `BENCHMARKS.md`, sizes, and
//! the stand-in billing endpoint the billing consumer calls.

use crate::runtime::BoxError;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Nearest-rank percentiles of a sample, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Stats {
    pub fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            if ms.is_empty() {
                return f64::NAN;
            }
            let index = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[index.clamp(1, ms.len()) - 1]
        };
        Stats {
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
        }
    }
}

pub struct Row {
    pub label: &'static str,
    pub function: &'static str,
    pub side: &'static str,
    /// Process start to the first `/next` poll.
    pub init: Option<Stats>,
    /// Process start to the first answer (for the floor: to exit).
    pub first: Stats,
    /// The floor, run right before each of this row's cold starts (Rust rows).
    pub floor: Option<Stats>,
    pub warm: Option<Stats>,
    /// The same operation in-process on the store.
    pub direct: Option<Stats>,
    /// SDK requests per operation, counted in the direct loop.
    pub calls: Option<String>,
    pub rss_kib: Option<u64>,
    pub size: Option<u64>,
    pub zipped: Option<u64>,
}

fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn pair(a: f64, b: f64) -> String {
    format!("{} / {}", ms(a), ms(b))
}

fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1_000_000.0)
}

impl Row {
    fn overhead(&self) -> Option<(f64, f64)> {
        let (warm, direct) = (self.warm?, self.direct?);
        Some((warm.p50 - direct.p50, warm.p99 - direct.p99))
    }

    fn cells(&self) -> Vec<String> {
        let dash = || "–".to_owned();
        vec![
            format!("`{}`", self.label),
            self.function.to_owned(),
            self.side.to_owned(),
            self.init.map_or_else(dash, |s| pair(s.p50, s.p95)),
            pair(self.first.p50, self.first.p95),
            self.floor.map_or_else(dash, |s| pair(s.p50, s.p95)),
            self.warm.map_or_else(dash, |s| pair(s.p50, s.p99)),
            self.direct.map_or_else(dash, |s| pair(s.p50, s.p99)),
            self.overhead().map_or_else(dash, |(a, b)| pair(a, b)),
            self.calls.clone().unwrap_or_else(dash),
            self.rss_kib
                .map_or_else(dash, |kib| format!("{:.1}", kib as f64 / 1024.0)),
            self.size.map_or_else(dash, mb),
            self.zipped.map_or_else(dash, mb),
        ]
    }
}

const HEADER: [&str; 13] = [
    "Operation",
    "Function",
    "Runtime",
    "Init: start → first `/next`, p50 / p95 ms",
    "Cold: start → first answer, p50 / p95 ms",
    "Floor run beside those cold starts, p50 / p95 ms",
    "Warm invoke p50 / p99 ms",
    "Same call in-process p50 / p99 ms",
    "Handler overhead p50 / p99 ms",
    "SDK calls per operation",
    "Peak RSS MiB",
    "Binary MB",
    "Zipped MB",
];

fn table(rows: &[Row]) -> String {
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut out = line(HEADER.iter().map(|h| h.to_string()).collect());
    out += &line(HEADER.iter().map(|_| "---".to_owned()).collect());
    for row in rows {
        out += &line(row.cells());
    }
    out
}

/// Progress: rows as they are measured.
pub fn print(rows: &[Row]) {
    for row in rows {
        eprintln!("  {}", row.cells().join(" | "));
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

struct Target {
    goal: &'static str,
    measured: String,
    /// How many of the rows meet it, of how many.
    met: (usize, usize),
}

/// A target judged on every row that has the figure: each value listed, the count that meet it.
fn each(
    goal: &'static str,
    values: Vec<(&Row, f64)>,
    show: impl Fn(f64) -> String,
    ok: impl Fn(f64) -> bool,
) -> Option<Target> {
    if values.is_empty() {
        return None;
    }
    Some(Target {
        goal,
        measured: values
            .iter()
            .map(|(row, value)| format!("`{}` {}", row.label, show(*value)))
            .collect::<Vec<_>>()
            .join(", "),
        met: (values.iter().filter(|(_, v)| ok(*v)).count(), values.len()),
    })
}

fn targets(rows: &[Row]) -> Vec<Target> {
    let rust: Vec<&Row> = rows.iter().filter(|r| r.side == "Rust").collect();
    let python = |label: &str| {
        rows.iter()
            .find(|r| r.side.starts_with("Python") && r.label == label)
    };
    [
        each(
            "cold start to first answer within 1.5× the bare-SDK floor run beside it (p50; the floor does one GetItem, the sign-up three requests)",
            rust.iter().filter_map(|r| Some((*r, r.first.p50 / r.floor?.p50))).collect(),
            |v| format!("{v:.2}×"),
            |v| v <= 1.5,
        ),
        each(
            "cold start at least 25× faster than the boto3 handler (p50)",
            rust.iter()
                .filter_map(|r| Some((*r, python(r.label)?.first.p50 / r.first.p50)))
                .collect(),
            |v| format!("{v:.0}×"),
            |v| v >= 25.0,
        ),
        each(
            "warm handler overhead beyond the same call in-process under 1 ms at p99",
            rust.iter().filter_map(|r| Some((*r, r.overhead()?.1))).collect(),
            |v| format!("{} ms", ms(v)),
            |v| v < 1.0,
        ),
        each(
            "peak RSS under 40 MB",
            rust.iter().filter_map(|r| Some((*r, r.rss_kib? as f64 * 1024.0))).collect(),
            |v| format!("{:.1} MB", v / 1_000_000.0),
            |v| v < 40_000_000.0,
        ),
        each(
            "each zipped function under 5 MB (x86_64)",
            rust.iter().filter_map(|r| Some((*r, r.zipped? as f64))).collect(),
            |v| format!("{:.2} MB", v / 1_000_000.0),
            |v| v < 5_000_000.0,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

pub const START: &str = "<!-- make bench: generated from here -->";
pub const END: &str = "<!-- make bench: generated up to here -->";

/// Prints the table and rewrites the generated part of `out`, keeping the rest of the file.
pub fn write(out: &Path, rows: &[Row], cold: usize, warm: usize) -> Result<(), BoxError> {
    let date = time::OffsetDateTime::now_utc().date();
    let mut generated = format!(
        "{START}\n\nMeasured {date} on {}: {cold} cold starts and {warm} warm invocations per row, \
         against the local emulator (moto over loopback HTTP). Times in milliseconds.\n\n",
        machine()
    );
    generated += &table(rows);
    generated += "\n| Target | Measured | Met |\n| --- | --- | --- |\n";
    for target in targets(rows) {
        let (met, of) = target.met;
        let verdict = if met == of {
            format!("yes ({met} of {of})")
        } else {
            format!("**{met} of {of}**")
        };
        generated += &format!("| {} | {} | {verdict} |\n", target.goal, target.measured);
    }
    generated += &format!("\n{END}\n");
    println!("{generated}");

    let current = std::fs::read_to_string(out).unwrap_or_default();
    let text = match (current.find(START), current.find(END)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{}{}",
            &current[..start],
            generated.trim_end(),
            &current[end + END.len()..]
        ),
        _ => format!("# Benchmarks\n\n{generated}"),
    };
    std::fs::write(out, text)?;
    Ok(())
}

/// The binary zipped as Lambda takes it (one `bootstrap` entry, deflated), in `dir`.
pub fn zipped_size(binary: &Path, dir: &Path) -> Result<u64, BoxError> {
    let name = binary.file_name().ok_or("a binary name")?.to_string_lossy();
    let path = dir.join(format!("{name}.zip"));
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path)?);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(&std::fs::read(binary)?)?;
    zip.finish()?;
    Ok(std::fs::metadata(path)?.len())
}

/// A billing endpoint that accepts every credit at once, on a free loopback port.
pub async fn billing_receiver() -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/credits", listener.local_addr()?);
    let app = axum::Router::new().route("/credits", axum::routing::post(|| async { "{}" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}
