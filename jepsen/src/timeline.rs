//! `DIR/timeline.html`: a self-contained page of operations per process on a time axis, with
//! nemesis intervals shaded.
//!
//! The page needs nothing but a browser: inline CSS and one inline SVG, no script, no external
//! resource. Layout:
//! - the x axis is seconds since the start of the history, with ticks and grid lines;
//! - one row (lane) per client process. Every `info` completion retires a process, so a run has
//!   many short-lived processes; processes that never overlap in time share a lane (a worker's
//!   successive processes normally land in one lane). With [`TimelineOptions::process_nodes`]
//!   lanes are grouped by the node the processes were bound to;
//! - each operation is a bar from its invocation to its completion, colored by outcome (ok green,
//!   fail red, info orange); an operation that never completed extends to the end of the
//!   history. Hovering a bar shows its index, process, `f`, value, outcome and error;
//! - nemesis intervals ([`History::fault_intervals`]) are translucent bands across all lanes,
//!   labelled with the fault and its variant, and drawn as bars in a `nemesis` lane on top;
//! - operations named by an anomaly ([`TimelineOptions::highlight`]) get a black outline.
//!
//! Markup per operation is one `<rect>` with a `<title>` (about 150 bytes), so a 10k-operation
//! history gives a page of a megabyte or two.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde_json::Value;

use crate::checker::{Report, Verdict};
use crate::history::{FaultInterval, History, OpType, Process};

/// Extra information for [`render_with`].
#[derive(Clone, Debug, Default)]
pub struct TimelineOptions {
    /// A verdict line shown under the title (e.g. `"invalid: linearizability invalid"`), and the
    /// verdict that colors it.
    pub verdict: Option<(Verdict, String)>,
    /// Invocation indices of operations to outline (those named by anomalies).
    pub highlight: BTreeSet<u64>,
    /// Client process → node it talked to; lanes are grouped by node when given.
    pub process_nodes: HashMap<u64, u64>,
}

impl TimelineOptions {
    /// Options from a check report: its verdict line, and the operations its anomalies name.
    pub fn from_report(report: &Report) -> Self {
        let mut highlight = BTreeSet::new();
        let mut parts = Vec::new();
        for r in &report.results {
            parts.push(format!(
                "{} {} ({} anomalies)",
                r.checker,
                r.verdict.as_str(),
                r.anomaly_count()
            ));
            for a in &r.anomalies {
                highlight.extend(a.ops.iter().map(|o| o.invoke_index));
            }
        }
        let line = format!(
            "verdict: {} — {}",
            report.verdict.as_str(),
            parts.join("; ")
        );
        TimelineOptions {
            verdict: Some((report.verdict, line)),
            highlight,
            process_nodes: HashMap::new(),
        }
    }
}

/// Renders `history` as one self-contained HTML page titled `title`.
pub fn render(history: &History, title: &str) -> String {
    render_with(history, title, &TimelineOptions::default())
}

/// One client operation as drawn: invocation to completion (or the end of the history).
struct Bar {
    invoke_index: u64,
    complete_index: Option<u64>,
    process: u64,
    start: u64,
    end: Option<u64>,
    outcome: Option<OpType>,
    f: String,
    value: Value,
    error: Option<String>,
}

/// Pairs invocations with completions leniently (a malformed history still renders).
fn bars(history: &History) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    for op in history.ops() {
        let Process::Client(p) = op.process else {
            continue;
        };
        if op.op_type == OpType::Invoke {
            pending.insert(p, out.len());
            out.push(Bar {
                invoke_index: op.index,
                complete_index: None,
                process: p,
                start: op.time,
                end: None,
                outcome: None,
                f: op.f.to_string(),
                value: op.value.clone(),
                error: None,
            });
        } else if let Some(i) = pending.remove(&p) {
            let b = &mut out[i];
            b.complete_index = Some(op.index);
            b.end = Some(op.time.max(b.start));
            b.outcome = Some(op.op_type);
            if !op.value.is_null() {
                b.value = op.value.clone();
            }
            b.error = op.error.clone();
        }
    }
    out
}

/// A value's JSON text, cut to [`MAX_TOOLTIP_VALUE`] characters (a final read lists every
/// element).
fn short_value(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= MAX_TOOLTIP_VALUE {
        return text;
    }
    let mut t: String = text.chars().take(MAX_TOOLTIP_VALUE).collect();
    t.push('…');
    if let Some(a) = v.as_array() {
        t.push_str(&format!(" ({} elements)", a.len()));
    }
    t
}

/// Longest value text shown in a tooltip.
const MAX_TOOLTIP_VALUE: usize = 300;

/// Escapes text for HTML/SVG content and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A short label for a fault: its name and the first string fields of its value.
fn fault_label(iv: &FaultInterval) -> String {
    let mut label = iv.fault.clone();
    if let Some(obj) = iv.value.as_object() {
        for key in ["variant", "kind", "mode"] {
            if let Some(v) = obj.get(key).and_then(Value::as_str) {
                label.push(' ');
                label.push_str(v);
                return label;
            }
        }
        if let Some(v) = obj.get("nodes").or_else(|| obj.get("node")) {
            label.push(' ');
            label.push_str(&v.to_string());
        }
    }
    label
}

/// Band color of a fault kind.
fn fault_color(fault: &str) -> &'static str {
    match fault {
        "partition" => "#4a78d0",
        "kill" => "#c03030",
        "pause" => "#9050c0",
        "clock" => "#20a0a0",
        _ => "#808080",
    }
}

/// A round tick step (1, 2 or 5 times a power of ten, in seconds) giving at most `max_ticks`
/// ticks over `span` seconds.
fn tick_step(span: f64, max_ticks: f64) -> f64 {
    let mut exp = -3;
    loop {
        for m in [1.0, 2.0, 5.0] {
            let s = m * 10f64.powi(exp);
            if span / s <= max_ticks || exp > 30 {
                return s;
            }
        }
        exp += 1;
    }
}

/// A lane: processes that never overlap, drawn in one row.
struct Lane {
    node: Option<u64>,
    processes: Vec<u64>,
    busy_until: u64,
}

/// Renders `history` with a verdict line, highlighted operations and node grouping.
pub fn render_with(history: &History, title: &str, opts: &TimelineOptions) -> String {
    let bars = bars(history);
    let faults = history.fault_intervals();
    let end_time = history
        .ops()
        .iter()
        .map(|o| o.time)
        .max()
        .unwrap_or(0)
        .max(1);

    // Each process's span: first invocation to last completion (or the end).
    let mut spans: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for b in &bars {
        let e = b.end.unwrap_or(end_time);
        let s = spans.entry(b.process).or_insert((b.start, e));
        s.0 = s.0.min(b.start);
        s.1 = s.1.max(e);
    }
    // Pack processes into lanes, per node group, in order of first invocation.
    let mut order: Vec<(Option<u64>, u64, u64, u64)> = spans
        .iter()
        .map(|(&p, &(s, e))| (opts.process_nodes.get(&p).copied(), s, e, p))
        .collect();
    order.sort();
    let mut lanes: Vec<Lane> = Vec::new();
    let mut lane_of: HashMap<u64, usize> = HashMap::new();
    for (node, start, end, p) in order {
        let slot = lanes
            .iter()
            .position(|l| l.node == node && l.busy_until < start);
        let i = match slot {
            Some(i) => i,
            None => {
                lanes.push(Lane {
                    node,
                    processes: Vec::new(),
                    busy_until: 0,
                });
                lanes.len() - 1
            }
        };
        lanes[i].processes.push(p);
        lanes[i].busy_until = end;
        lane_of.insert(p, i);
    }

    // Geometry.
    let span_s = end_time as f64 / 1e9;
    let plot_w = (span_s * 80.0).clamp(900.0, 8000.0);
    let label_w = 150.0;
    let row_h = 14.0;
    let axis_h = 24.0;
    let nemesis_rows = 1.0;
    let top = axis_h;
    let lanes_top = top + nemesis_rows * row_h + 6.0;
    let plot_h = lanes_top + lanes.len() as f64 * row_h + 4.0;
    let total_h = plot_h + axis_h;
    let total_w = label_w + plot_w + 20.0;
    let x = |t: u64| label_w + t as f64 / end_time as f64 * plot_w;

    let (mut n_ok, mut n_fail, mut n_info, mut n_pending) = (0usize, 0usize, 0usize, 0usize);
    for b in &bars {
        match b.outcome {
            Some(OpType::Ok) => n_ok += 1,
            Some(OpType::Fail) => n_fail += 1,
            Some(_) => n_info += 1,
            None => n_pending += 1,
        }
    }

    let mut h = String::with_capacity(4096 + bars.len() * 170);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title>\n<style>\n\
         body{{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}}\n\
         h1{{font-size:18px;margin:0 0 4px}}\n\
         .verdict{{font-weight:bold;margin:4px 0}}\n\
         .v-valid{{color:#1a7f1a}} .v-invalid{{color:#c01818}} .v-unknown{{color:#b07000}}\n\
         .legend span{{display:inline-block;margin-right:14px}}\n\
         .sw{{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;border:1px solid #0003}}\n\
         .scroll{{overflow-x:auto;border:1px solid #ddd;margin-top:8px}}\n\
         svg text{{font:11px system-ui,sans-serif;fill:#333}}\n\
         svg .grid{{stroke:#e4e4e4;stroke-width:1}}\n\
         svg .o{{fill:#3a9a3a}} svg .f{{fill:#e06070}} svg .i{{fill:#f0a020}} svg .p{{fill:#f0a020;opacity:.5}}\n\
         svg .hl{{stroke:#000;stroke-width:1.5}}\n\
         svg rect:hover{{stroke:#000;stroke-width:1}}\n\
         svg .band{{opacity:.13}}\n\
         svg .lane:nth-child(odd){{fill:#f7f7f7}} svg .lane{{fill:#fff}}\n\
         </style></head><body>\n<h1>{t}</h1>\n",
        t = esc(title)
    );
    if let Some((verdict, line)) = &opts.verdict {
        let _ = writeln!(
            h,
            "<div class=\"verdict v-{}\">{}</div>",
            verdict.as_str(),
            esc(line)
        );
    }
    let _ = writeln!(
        h,
        "<div>{} client ops: {n_ok} ok, {n_fail} fail, {n_info} info, {n_pending} never completed; \
         {} processes in {} lanes; {} fault intervals; {:.1} s</div>",
        bars.len(),
        spans.len(),
        lanes.len(),
        faults.len(),
        span_s
    );
    h.push_str(
        "<div class=\"legend\"><span><i class=\"sw\" style=\"background:#3a9a3a\"></i>ok</span>\
         <span><i class=\"sw\" style=\"background:#e06070\"></i>fail (certainly not applied)</span>\
         <span><i class=\"sw\" style=\"background:#f0a020\"></i>info (indeterminate)</span>\
         <span><i class=\"sw\" style=\"background:#f0a020;opacity:.5\"></i>never completed</span>\
         <span><i class=\"sw\" style=\"background:#fff;border:2px solid #000\"></i>named by an anomaly</span>",
    );
    let mut kinds: Vec<&str> = faults.iter().map(|f| f.fault.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    for k in kinds {
        let _ = write!(
            h,
            "<span><i class=\"sw\" style=\"background:{};opacity:.35\"></i>{} (nemesis)</span>",
            fault_color(k),
            esc(k)
        );
    }
    h.push_str("</div>\n<div class=\"scroll\">\n");
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w:.0}\" height=\"{total_h:.0}\">"
    );

    // Lane backgrounds and labels.
    h.push_str("<g>");
    for i in 0..lanes.len() {
        let y = lanes_top + i as f64 * row_h;
        let _ = write!(
            h,
            "<rect class=\"lane\" x=\"0\" y=\"{y:.1}\" width=\"{total_w:.0}\" height=\"{row_h}\"/>"
        );
    }
    h.push_str("</g>\n");
    let mut last_node: Option<Option<u64>> = None;
    for (i, lane) in lanes.iter().enumerate() {
        let y = lanes_top + i as f64 * row_h + row_h - 3.0;
        let mut label = String::new();
        if last_node != Some(lane.node) {
            if let Some(n) = lane.node {
                let _ = write!(label, "n{n} ");
            }
            last_node = Some(lane.node);
        } else if lane.node.is_some() {
            label.push_str("   ");
        }
        let shown: Vec<String> = lane
            .processes
            .iter()
            .take(3)
            .map(|p| format!("p{p}"))
            .collect();
        label.push_str(&shown.join(","));
        if lane.processes.len() > 3 {
            let _ = write!(label, " +{}", lane.processes.len() - 3);
        }
        let all: Vec<String> = lane.processes.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            h,
            "<text x=\"4\" y=\"{y:.1}\" xml:space=\"preserve\">{}<title>processes {}</title></text>",
            esc(&label),
            all.join(", ")
        );
    }
    let _ = writeln!(
        h,
        "<text x=\"4\" y=\"{:.1}\">nemesis</text>",
        top + row_h - 3.0
    );

    // Time axis: grid lines and labels top and bottom.
    let step = tick_step(span_s, (plot_w / 70.0).max(2.0));
    let decimals = if step >= 1.0 {
        0
    } else if step >= 0.1 {
        1
    } else if step >= 0.01 {
        2
    } else {
        3
    };
    h.push_str("<g>");
    let mut k = 0u64;
    loop {
        let t = k as f64 * step;
        if t > span_s + 1e-9 {
            break;
        }
        let px = label_w + t / span_s * plot_w;
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{plot_h:.1}\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.decimals$}s</text>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.decimals$}s</text>",
            axis_h - 8.0,
            axis_h - 12.0,
            plot_h + 14.0,
        );
        k += 1;
    }
    h.push_str("</g>\n");

    // Nemesis bands across all lanes, and bars in the nemesis lane.
    h.push_str("<g>");
    for iv in &faults {
        let x0 = x(iv.start_time);
        let x1 = x(iv.stop_time.unwrap_or(end_time)).max(x0 + 1.0);
        let color = fault_color(&iv.fault);
        let label = fault_label(iv);
        let stop = match iv.stop_time {
            Some(t) => format!("{:.3}s", t as f64 / 1e9),
            None => "end (never stopped)".to_string(),
        };
        let tip = format!(
            "{} from {:.3}s to {} (records {}..{})\n{}",
            label,
            iv.start_time as f64 / 1e9,
            stop,
            iv.start_index,
            iv.stop_index
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            iv.value
        );
        let _ = writeln!(
            h,
            "<rect class=\"band nemesis-band\" data-fault=\"{}\" x=\"{x0:.1}\" y=\"{top:.1}\" \
             width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}</title></rect>\
             <rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\" \
             opacity=\".6\"><title>{}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            esc(&iv.fault),
            x1 - x0,
            plot_h - top,
            esc(&tip),
            top + 2.0,
            x1 - x0,
            row_h - 4.0,
            esc(&tip),
            x0 + 2.0,
            top + row_h - 3.0,
            esc(&label),
        );
    }
    h.push_str("</g>\n");

    // Operation bars.
    h.push_str("<g>\n");
    for b in &bars {
        let lane = lane_of[&b.process];
        let y = lanes_top + lane as f64 * row_h + 2.0;
        let x0 = x(b.start);
        let x1 = x(b.end.unwrap_or(end_time));
        let w = (x1 - x0).max(1.5);
        let class = match b.outcome {
            Some(OpType::Ok) => "o",
            Some(OpType::Fail) => "f",
            Some(_) => "i",
            None => "p",
        };
        let hl = if opts.highlight.contains(&b.invoke_index) {
            " hl"
        } else {
            ""
        };
        let outcome = match b.outcome {
            Some(OpType::Ok) => "ok",
            Some(OpType::Fail) => "fail",
            Some(_) => "info",
            None => "never completed",
        };
        let dur = match b.end {
            Some(e) => format!("{:.1}ms", (e - b.start) as f64 / 1e6),
            None => "-".into(),
        };
        let mut tip = format!(
            "#{}{} p{} {} {} {} {} at {:.3}s",
            b.invoke_index,
            b.complete_index
                .map(|c| format!("-{c}"))
                .unwrap_or_default(),
            b.process,
            b.f,
            short_value(&b.value),
            outcome,
            dur,
            b.start as f64 / 1e9
        );
        if let Some(e) = &b.error {
            tip.push_str(" — ");
            tip.push_str(e);
        }
        let _ = writeln!(
            h,
            "<rect class=\"{class}{hl}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.0}\">\
             <title>{}</title></rect>",
            row_h - 4.0,
            esc(&tip)
        );
    }
    h.push_str("</g>\n</svg>\n</div>\n");
    h.push_str(
        "<p style=\"color:#666\">Hover a bar for the operation (history index, process, f, value, \
         outcome, duration, error). Processes that never overlap share a lane; a process is \
         retired after an indeterminate (info) operation. Shaded bands are nemesis faults.</p>\n\
         </body></html>\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Func, Op};
    use crate::workload::register;
    use serde_json::json;

    fn op(
        index: u64,
        op_type: OpType,
        process: Process,
        f: Func,
        value: Value,
        time_ms: u64,
    ) -> Op {
        Op {
            index,
            op_type,
            process,
            f,
            value,
            time: time_ms * 1_000_000,
            error: None,
        }
    }

    fn sample() -> History {
        use OpType::*;
        let c = Process::Client;
        let mut ops = vec![
            op(
                0,
                Invoke,
                c(0),
                Func::Write,
                register::write("k", json!(1)),
                0,
            ),
            op(
                1,
                Info,
                Process::Nemesis,
                Func::Start,
                json!({"fault": "partition", "variant": "majority-minority"}),
                100,
            ),
            op(
                2,
                Ok,
                c(0),
                Func::Write,
                register::write("k", json!(1)),
                200,
            ),
            op(3, Invoke, c(1), Func::Read, register::read("k"), 300),
            op(
                4,
                Invoke,
                c(0),
                Func::Write,
                register::write("k", json!(2)),
                400,
            ),
            op(5, Fail, c(1), Func::Read, register::read("k"), 900),
            op(
                6,
                Info,
                Process::Nemesis,
                Func::Stop,
                json!({"fault": "partition"}),
                1500,
            ),
            op(
                7,
                Info,
                c(0),
                Func::Write,
                register::write("k", json!(2)),
                1600,
            ),
            op(8, Invoke, c(2), Func::Read, register::read("k"), 1700),
            op(9, Invoke, c(3), Func::Read, register::read("k<&>"), 1800),
        ];
        ops[7].error = Some("Unavailable: timed out".into());
        ops.push(op(
            10,
            Ok,
            c(2),
            Func::Read,
            register::read_ok("k", json!(2), true),
            2500,
        ));
        History::from_ops(ops)
    }

    #[test]
    fn renders_svg_with_bands_and_bars() {
        let html = render(&sample(), "register <test>");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<svg"));
        assert!(html.contains("</svg>"));
        assert!(html.contains("register &lt;test&gt;"));
        // the nemesis band, labelled with fault and variant
        assert_eq!(html.matches("class=\"band nemesis-band\"").count(), 1);
        assert!(html.contains("data-fault=\"partition\""));
        assert!(html.contains("partition majority-minority"));
        // one bar per operation, colored by outcome
        assert_eq!(html.matches("<rect class=\"o").count(), 2);
        assert_eq!(html.matches("<rect class=\"f").count(), 1);
        assert_eq!(html.matches("<rect class=\"i").count(), 1);
        assert_eq!(html.matches("<rect class=\"p").count(), 1);
        // tooltips name the op; values are escaped
        assert!(
            html.contains("#4-7 p0 write {&quot;key&quot;:&quot;k&quot;,&quot;value&quot;:2} info")
        );
        assert!(html.contains("Unavailable: timed out"));
        assert!(html.contains("k&lt;&amp;&gt;"));
        assert!(!html.contains("k<&>"));
        // self-contained
        assert!(!html.contains("http://") || !html.contains("src=\"http"));
        assert!(!html.contains("<script src"));
        assert!(!html.contains("<link"));
    }

    #[test]
    fn non_overlapping_processes_share_a_lane() {
        let html = render(&sample(), "t");
        // p0 ends at 1600ms, p2 starts at 1700ms: same lane; p1 (300-900ms) overlaps p0 and
        // shares its lane with p3 (from 1800ms).
        assert!(html.contains(">p0,p2<"), "{html}");
        assert!(html.contains(">p1,p3<"), "{html}");
        assert!(html.contains("4 processes in 2 lanes"));
    }

    #[test]
    fn highlights_and_groups_by_node() {
        let mut opts = TimelineOptions {
            verdict: Some((Verdict::Invalid, "verdict: invalid".into())),
            ..Default::default()
        };
        opts.highlight.insert(8);
        opts.process_nodes = HashMap::from([(0, 1), (1, 2), (2, 2), (3, 1)]);
        let html = render_with(&sample(), "t", &opts);
        assert!(html.contains("class=\"verdict v-invalid\""));
        assert_eq!(html.matches("class=\"o hl\"").count(), 1);
        assert!(html.contains(">n1 p0,p3<"), "{html}");
        assert!(html.contains(">n2 p1,p2<"), "{html}");
    }

    #[test]
    fn long_values_are_cut() {
        let long: Vec<u64> = (0..1000).collect();
        let v = short_value(&json!(long));
        assert!(v.ends_with("… (1000 elements)"), "{v}");
        assert!(v.chars().count() < MAX_TOOLTIP_VALUE + 20);
        assert_eq!(short_value(&json!({"key": "k"})), "{\"key\":\"k\"}");
    }

    #[test]
    fn empty_history_renders() {
        let html = render(&History::new(), "empty");
        assert!(html.contains("<svg"));
        assert!(html.contains("0 client ops"));
    }

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(tick_step(40.0, 40.0), 1.0);
        assert_eq!(tick_step(40.0, 10.0), 5.0);
        assert_eq!(tick_step(0.003, 10.0), 0.001);
        assert!(tick_step(100_000.0, 10.0) >= 10_000.0);
    }
}
