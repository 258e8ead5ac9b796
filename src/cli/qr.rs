//! QR codes drawn with Unicode half blocks, for scanning a TOTP enrolment off the terminal.

use anyhow::{Context, Result};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

pub fn render(text: &str) -> Result<String> {
    let code = QrCode::new(text.as_bytes()).context("cannot make a QR code")?;
    // Inverted colours: most terminals draw light text on a dark background.
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
