//! Rendering a stored frame for people: decode, rescale, window (VOI),
//! photometric interpretation to RGB or grey, scale to a viewport, and
//! encode as JPEG or PNG.
