//! Reading and writing radiographs (PNG, TIFF, DICOM) and label masks.
