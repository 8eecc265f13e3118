//! `chart RESULTS.tsv OUT.svg`: bench/systems.sh's results as two grouped bar charts, ops/s
//! and p99 latency per load, one bar per system (the median over the rounds), drawn with
//! plotters from the run's own numbers.

use std::collections::BTreeMap;

use plotters::prelude::*;

/// (load, system) -> (ops/s per round, p99 ms per round).
type Results = BTreeMap<(String, String), (Vec<f64>, Vec<f64>)>;

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn read(path: &str) -> Result<Results, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut r = Results::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let num = |k: usize| f.get(k).and_then(|s| s.parse::<f64>().ok());
        let (Some(ops), Some(p99)) = (num(3), num(5)) else {
            return Err(format!("{path}:{}: not round, system, load, ops, p50, p99: {line}", i + 1));
        };
        let e = r.entry((f[2].to_string(), f[1].to_string())).or_default();
        e.0.push(ops);
        e.1.push(p99);
    }
    Ok(r)
}

const SYSTEMS: [(&str, RGBColor); 4] = [
    ("skiff", RGBColor(31, 119, 180)),
    ("skiff-lease", RGBColor(148, 103, 189)),
    ("redis", RGBColor(214, 39, 40)),
    ("etcd", RGBColor(44, 160, 44)),
];
const LOADS: [&str; 6] = ["set-c1", "set-c50", "set-c256", "set-c50-p16", "get-c1", "get-c50"];

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    results: &Results,
    title: &str,
    value: impl Fn(&(Vec<f64>, Vec<f64>)) -> f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let loads: Vec<&str> = LOADS.iter().copied().filter(|l| results.keys().any(|(load, _)| load == l)).collect();
    // A log scale: a load at 2,000 ops/s and one at 500,000 both show.
    let max = results.values().map(&value).fold(0.0, f64::max) * 1.5;
    let min = results.values().map(&value).fold(f64::MAX, f64::min).max(1e-3) / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..loads.len() as f64, (min..max.max(min * 2.0)).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(loads.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < loads.len() {
                loads[i].to_string()
            } else {
                String::new()
            }
        })
        .draw()?;
    let width = 0.8 / SYSTEMS.len() as f64;
    let floor = min;
    for (s, (system, color)) in SYSTEMS.iter().enumerate() {
        let bars = loads.iter().enumerate().filter_map(|(i, load)| {
            let v = value(results.get(&(load.to_string(), system.to_string()))?);
            let x0 = i as f64 + 0.1 + s as f64 * width;
            Some(Rectangle::new([(x0, floor), (x0 + width * 0.95, v)], color.filled()))
        });
        chart
            .draw_series(bars)?
            .label(*system)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(input), Some(output)) = (args.get(1), args.get(2)) else {
        return Err("usage: chart RESULTS.tsv OUT.svg".into());
    };
    let results = read(input)?;
    let root = SVGBackend::new(output, (1400, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    panel(&left, &results, "ops/s, log scale (median of rounds)", |(ops, _)| median(ops))?;
    panel(&right, &results, "p99 latency in ms, log scale (median of rounds)", |(_, p99)| median(p99))?;
    root.present()?;
    Ok(())
}
