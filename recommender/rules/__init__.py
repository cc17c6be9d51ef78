"""Editorial rules: pins and blocks folded into Related and Popular lists at read time."""
