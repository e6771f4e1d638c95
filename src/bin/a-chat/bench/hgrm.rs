//! A latency histogram as HdrHistogram's percentile distribution text (`.hgrm`), the format of
//! `outputPercentileDistribution` that HdrHistogram's plotters and tools read: values in
//! milliseconds, five ticks per half distance to 100%, then the mean, deviation, max and count.

use std::fmt::Write;

use hdrhistogram::Histogram;

/// Ticks per half of the distance to the 100th percentile, as HdrHistogram's tools use.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// `histogram` (in microseconds) as `.hgrm` text, values in milliseconds.
pub fn percentile_distribution(histogram: &Histogram<u64>) -> String {
    let scale = 1000.0;
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0;
    for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / scale;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {quantile:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {quantile:2.12} {total:10}");
        }
    }
    let sub_buckets = 2u64.pow(
        (2.0 * 10f64.powi(i32::from(histogram.sigfig())))
            .log2()
            .ceil() as u32,
    );
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / scale,
        histogram.stdev() / scale
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        histogram.max() as f64 / scale,
        histogram.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        sub_buckets
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_climbs_to_the_max_and_sums_to_the_count() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=10_000 {
            histogram.record(us).unwrap();
        }
        let text = percentile_distribution(&histogram);
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(2)
            .take_while(|line| !line.starts_with('#'))
            .map(|line| {
                line.split_whitespace()
                    .map(|field| field.parse().unwrap())
                    .collect()
            })
            .collect();
        assert!(rows.len() > 20);
        assert!(
            rows.windows(2)
                .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1])
        );
        let last = rows.last().unwrap();
        assert_eq!(last.len(), 3);
        assert_eq!(last[1], 1.0);
        assert_eq!(last[2], 10_000.0);
        assert!((last[0] - 10.0).abs() < 0.02, "{last:?}");
        assert!(text.contains("Total count    =        10000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
    }
}
