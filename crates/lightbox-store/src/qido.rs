//! QIDO-RS searches over the DICOM index: studies, series and instances
//! matched by attribute, newest first, in bounded pages.

