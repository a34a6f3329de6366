/* standin_distcache.c: a stand-in libdistcache.so.1 whose DC_CTX functions
 * all fail, for the LD_PRELOAD test (tests/c_api.rs builds it into a
 * temporary directory with the SONAME libdistcache.so.1 and links
 * preload.c against it). A program that still works with the real library
 * preloaded proves that the preloaded library's functions are the ones
 * called. */
#include <distcache/dc_client.h>

DC_CTX *DC_CTX_new(const char *target, unsigned int flags)
{
	(void)target;
	(void)flags;
	return 0;
}

void DC_CTX_free(DC_CTX *ctx)
{
	(void)ctx;
}

int DC_CTX_add_session(DC_CTX *ctx, const unsigned char *id_data,
		       unsigned int id_len, const unsigned char *sess_data,
		       unsigned int sess_len, unsigned long timeout_msecs)
{
	(void)ctx;
	(void)id_data;
	(void)id_len;
	(void)sess_data;
	(void)sess_len;
	(void)timeout_msecs;
	return 0;
}

int DC_CTX_remove_session(DC_CTX *ctx, const unsigned char *id_data,
			  unsigned int id_len)
{
	(void)ctx;
	(void)id_data;
	(void)id_len;
	return 0;
}

int DC_CTX_get_session(DC_CTX *ctx, const unsigned char *id_data,
		       unsigned int id_len, unsigned char *result_storage,
		       unsigned int result_size, unsigned int *result_used)
{
	(void)ctx;
	(void)id_data;
	(void)id_len;
	(void)result_storage;
	(void)result_size;
	(void)result_used;
	return 0;
}

int DC_CTX_reget_session(DC_CTX *ctx, const unsigned char *id_data,
			 unsigned int id_len, unsigned char *result_storage,
			 unsigned int result_size, unsigned int *result_used)
{
	(void)ctx;
	(void)id_data;
	(void)id_len;
	(void)result_storage;
	(void)result_size;
	(void)result_used;
	return 0;
}

int DC_CTX_has_session(DC_CTX *ctx, const unsigned char *id_data,
		       unsigned int id_len)
{
	(void)ctx;
	(void)id_data;
	(void)id_len;
	return -1;
}
