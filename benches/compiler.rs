//! Workloads B and C of ../shared/bench/WORKLOAD.md through jitforge's
//! Compiler (`jitforge::workloads`, also behind `jitforge bench`): compile
//! time (IR in memory to bytes in executable memory), the compiled code's run
//! time, allocation counts; every result is checked.
//!
//! `cargo bench --bench compiler` (`RUNS=N` repetitions; medians).

fn main() -> Result<(), jitforge::Error> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    for line in jitforge::workloads::run(&["B", "C"], runs)? {
        println!("{line}");
    }
    Ok(())
}
