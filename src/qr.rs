//! QR codes for TOTP enrolment: Unicode half blocks for the terminal (`jwtgate user totp
//! enroll`), SVG for the admin API.

use anyhow::{Context, Result};
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

/// The QR code of `text` in Unicode half blocks.
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

/// The QR code of `text` as an SVG document.
pub fn svg(text: &str) -> Result<String> {
    let code = QrCode::new(text.as_bytes()).context("cannot make a QR code")?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}
