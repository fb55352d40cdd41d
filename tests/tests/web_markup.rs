//! No data goes into the pages as markup: names and notes are typed by
//! people, and an elder named `<img src=…>` must stay text. The shipped
//! scripts (the bundled Leaflet aside) never assign HTML, and hand
//! Leaflet's tooltips and popups elements, never strings (Leaflet puts a
//! string in with `innerHTML`).

use std::path::{Path, PathBuf};

fn scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read web dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "vendor") {
                continue;
            }
            scripts(&path, out);
        } else if path.extension().is_some_and(|e| e == "js" || e == "html") {
            out.push(path);
        }
    }
}

#[test]
fn the_shipped_scripts_never_put_data_in_as_html() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dispatcher/web");
    let mut files = Vec::new();
    scripts(&web, &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let html_sinks = [
        ".innerHTML",
        ".outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "createContextualFragment",
        "DOMParser",
    ];
    // Leaflet calls that take a string as HTML; `tip(…)` makes an element.
    let leaflet = [
        ".bindTooltip(",
        ".bindPopup(",
        ".setContent(",
        ".setTooltipContent(",
    ];
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read script");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with('*') || code.starts_with("/*") {
                continue;
            }
            for sink in html_sinks {
                if line.contains(sink) {
                    found.push(format!("{}:{}: {sink}: {line}", file.display(), n + 1));
                }
            }
            for call in leaflet {
                if let Some(at) = line.find(call) {
                    let arg = &line[at + call.len()..];
                    if !arg.starts_with("tip(") {
                        found.push(format!(
                            "{}:{}: {call} without tip(): {line}",
                            file.display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "markup from data:\n{}", found.join("\n"));
}
