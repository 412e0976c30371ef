// The fixed key the fuzz targets and their seeds share, so that seeds of
// encrypted files decrypt and the fuzzer can explore past authentication.
pub const KEY_ID: u32 = 1;
pub const KEY: [u8; 32] = [0x5e; 32];
pub const UID: [u8; 16] = [0x0f; 16];
