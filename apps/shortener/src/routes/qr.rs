//! `GET /api/v1/links/{code}/qr`: a QR code of the link's short URL, as
//! SVG or PNG, for whoever may read the link.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use qrcode::{EcLevel, QrCode};
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiState;
use crate::domain::ShortCode;
use crate::keys::Caller;
use crate::problem::{ApiError, ProblemBody};
use service_kit::extract::Query;

pub(super) const MIN_SIZE: u32 = 64;
pub(super) const MAX_SIZE: u32 = 2_048;
const DEFAULT_SIZE: u32 = 256;
/// Modules of white border on each side, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// The image's format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Svg,
    Png,
}

/// The query of a QR code.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct QrParams {
    /// svg (default) or png
    #[param(value_type = Option<String>, pattern = "^(svg|png)$")]
    format: Option<Format>,
    /// Width and height in pixels, at least (default 256); rounded up to whole modules
    #[param(value_type = Option<u32>, minimum = 64, maximum = 2048)]
    size: Option<Size>,
}

/// Pixels a side, [`MIN_SIZE`] to [`MAX_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u32")]
struct Size(u32);

impl TryFrom<u32> for Size {
    type Error = String;

    fn try_from(n: u32) -> Result<Self, String> {
        match (MIN_SIZE..=MAX_SIZE).contains(&n) {
            true => Ok(Self(n)),
            false => Err(format!("must be an integer from {MIN_SIZE} to {MAX_SIZE}")),
        }
    }
}

/// Whole pixels per module so the image, quiet zone included, is at least
/// `size` wide; and that width.
fn scale(modules: usize, size: u32) -> (usize, usize) {
    let side_modules = modules + 2 * QUIET_ZONE;
    let per_module = (size as usize).div_ceil(side_modules).max(1);
    (per_module, per_module * side_modules)
}

/// An 8-bit greyscale PNG of the code: black modules on white.
fn png(code: &QrCode, size: u32) -> Result<Vec<u8>, png::EncodingError> {
    let modules = code.width();
    let colors = code.to_colors();
    let (per_module, side) = scale(modules, size);
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for row in y * per_module..(y + 1) * per_module {
            pixels[row * side + x * per_module..row * side + (x + 1) * per_module].fill(0);
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).expect("at most a few thousand pixels");
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/api/v1/links/{code}/qr",
    tag = "links",
    params(
        ("code" = String, Path, description = "The short code"),
        QrParams,
    ),
    responses(
        (status = 200, description = "A QR code of the link's short URL, with its quiet zone", content(("image/svg+xml"), ("image/png"))),
        (status = 400, description = "Invalid parameter; `field` names it", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "Unknown code, or another author's link", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "Deleted", body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts from this address", body = ProblemBody, content_type = "application/problem+json", headers(("retry-after" = u64))),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(super) async fn link_qr(
    state: web::Data<ApiState>,
    caller: Caller,
    code: ShortCode,
    Query(params): Query<QrParams>,
) -> Result<HttpResponse, ApiError> {
    let format = params.format.unwrap_or_default();
    let size = params.size.map_or(DEFAULT_SIZE, |size| size.0);
    let link = state.service.get(code.as_str(), caller.scope()).await?;
    let short_url = format!("{}/{}", state.public_url, link.code);
    let qr = QrCode::with_error_correction_level(short_url.as_bytes(), EcLevel::M)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("no QR code for {short_url}: {e}")))?;
    let (content_type, body, extension) = match format {
        Format::Svg => {
            let svg = qr
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(size, size)
                .quiet_zone(true)
                .build();
            ("image/svg+xml", svg.into_bytes(), "svg")
        }
        Format::Png => {
            let png = png(&qr, size).map_err(|e| ApiError::Internal(e.into()))?;
            ("image/png", png, "png")
        }
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        // The short URL of a code never changes; only a key holder sees it.
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{}.{extension}\"", link.code),
        ))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_is_at_least_the_size_asked_in_whole_modules() {
        // Version 2 (25 modules) plus the quiet zone: 33 modules a side.
        assert_eq!(scale(25, 256), (8, 264));
        assert_eq!(scale(25, 64), (2, 66));
        assert_eq!(scale(25, 33), (1, 33));
    }

    #[test]
    fn a_png_decodes_to_the_same_modules() {
        let code = QrCode::new(b"http://127.0.0.1:8080/aZ3kP9q").unwrap();
        let bytes = png(&code, 100).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let (per_module, side) = scale(code.width(), 100);
        assert_eq!((info.width as usize, info.height as usize), (side, side));
        for (i, color) in code.to_colors().iter().enumerate() {
            let (x, y) = (i % code.width() + QUIET_ZONE, i / code.width() + QUIET_ZONE);
            let pixel = pixels[y * per_module * side + x * per_module];
            assert_eq!(pixel == 0, *color == qrcode::Color::Dark, "module {x},{y}");
        }
        assert_eq!(pixels[0], 255, "the quiet zone is white");
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, field) in [
            ("format=gif", "format"),
            ("size=10", "size"),
            ("size=4096", "size"),
            ("colour=red", "colour"),
        ] {
            let invalid = service_kit::extract::query::<QrParams>(query).unwrap_err();
            assert_eq!(invalid[0].name, field, "{query}");
        }
        let params: QrParams = service_kit::extract::query("format=png&size=512").unwrap();
        assert_eq!(
            (params.format, params.size),
            (Some(Format::Png), Some(Size(512)))
        );
    }
}
