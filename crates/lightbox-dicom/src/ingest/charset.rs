//! Specific Character Sets with ISO 2022 code extensions: Japanese (`ISO 2022
//! IR 87`, `IR 13`, `IR 159`) and Korean (`ISO 2022 IR 149`), switched by
//! escape sequences inside a value (PS3.5 6.1.2.5). dicom-rs does not decode
//! them: it hands such values over byte for byte, one char per byte. Those
//! values are decoded again here from their bytes.

use encoding::{DecoderTrap, Encoding};

/// Whether values under this Specific Character Set (its values joined by
/// `\`) need [`redecode`].
pub fn uses_code_extensions(specific_character_set: &str) -> bool {
    [
        "ISO 2022 IR 87",
        "ISO 2022 IR 13",
        "ISO 2022 IR 159",
        "ISO 2022 IR 149",
    ]
    .iter()
    .any(|c| specific_character_set.contains(c))
}

#[derive(Clone, Copy, PartialEq)]
enum G0 {
    Ascii,
    Jis0208,
    Jis0212,
}

#[derive(Clone, Copy, PartialEq)]
enum G1 {
    None,
    Katakana,
    Ksx1001,
}

/// What an escape sequence switches.
enum Designation {
    G0(G0),
    G1(G1),
}

/// Decodes `value` with the escape sequences it carries: chars up to U+00FF
/// are taken as the original bytes; chars above (what dicom-rs did decode,
/// e.g. half-width katakana under `ISO 2022 IR 13`) are kept as they are.
/// None when there is nothing to decode.
pub fn redecode(value: &str, specific_character_set: &str) -> Option<String> {
    if !value.contains('\u{1b}')
        && value
            .chars()
            .all(|c| u32::from(c) < 0x80 || u32::from(c) > 0xFF)
    {
        return None;
    }
    // Bytes, with chars above U+00FF standing in as 0xFF markers beside them.
    let units: Vec<Result<u8, char>> = value
        .chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| c))
        .collect();
    let bytes: Vec<u8> = units.iter().map(|u| u.unwrap_or(0)).collect();
    let first = specific_character_set
        .split('\\')
        .next()
        .unwrap_or("")
        .trim();
    let initial = match first {
        "ISO 2022 IR 13" => G1::Katakana,
        _ => G1::None,
    };
    let (mut g0, mut g1) = (G0::Ascii, initial);
    let mut out = String::with_capacity(value.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Err(decoded) = units[i] {
            out.push(decoded);
            i += 1;
            continue;
        }
        let b = bytes[i];
        if b == 0x1B {
            let rest = &bytes[i + 1..];
            let designated = match rest {
                [b'(', b'B' | b'J', ..] => Some((3, Designation::G0(G0::Ascii))),
                [b'$', b'B' | b'@', ..] => Some((3, Designation::G0(G0::Jis0208))),
                [b'$', b'(', b'D', ..] => Some((4, Designation::G0(G0::Jis0212))),
                [b')', b'I', ..] => Some((3, Designation::G1(G1::Katakana))),
                [b'$', b')', b'C', ..] => Some((4, Designation::G1(G1::Ksx1001))),
                _ => None,
            };
            if let Some((len, designation)) = designated {
                match designation {
                    Designation::G0(set) => g0 = set,
                    Designation::G1(set) => g1 = set,
                }
                i += len;
                continue;
            }
        }
        if b < 0x80 {
            match g0 {
                G0::Jis0208 | G0::Jis0212 if b > 0x20 && i + 1 < bytes.len() => {
                    let pair = [b | 0x80, bytes[i + 1] | 0x80];
                    let euc: Vec<u8> = if g0 == G0::Jis0212 {
                        [&[0x8F][..], &pair].concat()
                    } else {
                        pair.to_vec()
                    };
                    out.push_str(
                        &encoding::all::EUC_JP
                            .decode(&euc, DecoderTrap::Replace)
                            .ok()?,
                    );
                    i += 2;
                    continue;
                }
                _ => {
                    // Component and value delimiters return to the initial code elements.
                    if matches!(b, b'^' | b'=' | b'\\' | b'\r' | b'\n' | b'\t' | 0x0C) {
                        g0 = G0::Ascii;
                        g1 = initial;
                    }
                    out.push(char::from(b));
                }
            }
        } else {
            match g1 {
                G1::Katakana if (0xA1..=0xDF).contains(&b) => {
                    out.push(char::from_u32(0xFF61 + u32::from(b - 0xA1))?);
                }
                G1::Ksx1001 if i + 1 < bytes.len() => {
                    let pair = [b, bytes[i + 1]];
                    out.push_str(
                        &encoding::all::WINDOWS_949
                            .decode(&pair, DecoderTrap::Replace)
                            .ok()?,
                    );
                    i += 2;
                    continue;
                }
                _ => out.push(char::from(b)),
            }
        }
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latin1(bytes: &[u8]) -> String {
        bytes.iter().map(|&b| char::from(b)).collect()
    }

    #[test]
    fn japanese_kanji_and_hiragana_are_decoded() {
        // chrH31's PatientName.
        let raw = latin1(
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B",
        );
        assert_eq!(
            redecode(&raw, "\\ISO 2022 IR 87").unwrap(),
            "Yamada^Tarou=山田^太郎=やまだ^たろう"
        );
    }

    #[test]
    fn half_width_katakana_and_korean_are_decoded() {
        let raw = latin1(b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J");
        assert_eq!(
            redecode(&raw, "ISO 2022 IR 13\\ISO 2022 IR 87").unwrap(),
            "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎"
        );
        let korean = latin1(b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf");
        assert_eq!(
            redecode(&korean, "\\ISO 2022 IR 149").unwrap(),
            "Hong^Gildong=洪^吉洞=홍^길동"
        );
    }

    #[test]
    fn only_these_character_sets_need_it() {
        assert!(uses_code_extensions("\\ISO 2022 IR 87"));
        assert!(!uses_code_extensions("ISO_IR 192"));
        assert_eq!(redecode("Люк", "\\ISO 2022 IR 87"), None);
        assert_eq!(redecode("plain^ascii", "\\ISO 2022 IR 87"), None);
        // Already decoded katakana next to undecoded JIS X 0208.
        assert_eq!(
            redecode("ﾔﾏﾀﾞ=\u{1b}$B;3ED\u{1b}(J", "ISO 2022 IR 13\\ISO 2022 IR 87").unwrap(),
            "ﾔﾏﾀﾞ=山田"
        );
    }
}
