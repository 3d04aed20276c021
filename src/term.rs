//! Terminal output shared by the commands: progress bars on stderr, drawn only when stderr
//! is a terminal so that logs, pipes and CI output stay clean.

/// A bar of `len` steps drawn with `template` (indicatif's syntax); hidden off a terminal.
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
