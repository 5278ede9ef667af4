// The only place the project includes HDF5's hdf5.h (Debian package libhdf5-dev; pkg-config
// `hdf5` adds -I/usr/include/hdf5/serial). PercepHDF5 is the only Swift target importing CHDF5.
#ifndef CHDF5_SHIM_H
#define CHDF5_SHIM_H

#include <hdf5.h>

// HDF5's predefined types, property-list classes and file-access flags are macros such as
// `#define H5T_NATIVE_FLOAT (H5OPEN H5T_NATIVE_FLOAT_g)`, where H5OPEN is `H5open(),`: comma
// expressions that make sure the library is initialised before the global is read. Swift's
// importer skips macros like these, so each one the wrapper uses gets a getter here. The getters
// are `static inline` so that hdf5.h stays included in this one header and no C target is needed.

// Predefined datatypes.
static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t chdf5_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }
static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }

// Default property list, "whole dataspace" selection and the default error stack (all 0).
static inline hid_t chdf5_p_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_s_all(void) { return H5S_ALL; }
static inline hid_t chdf5_e_default(void) { return H5E_DEFAULT; }

// Property-list classes for H5Pcreate.
static inline hid_t chdf5_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t chdf5_p_link_create(void) { return H5P_LINK_CREATE; }
static inline hid_t chdf5_p_dataset_create(void) { return H5P_DATASET_CREATE; }

// File creation / access flags.
static inline unsigned chdf5_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_acc_rdwr(void) { return H5F_ACC_RDWR; }

#endif
