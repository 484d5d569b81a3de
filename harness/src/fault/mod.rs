//! Fault layer: a VFS shim over the unix VFS that counts I/O operations, crashes at the N-th, fails I/O on request, and logs writes so a power loss can be reconstructed.
