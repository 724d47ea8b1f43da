/* SPDX-License-Identifier: MIT */
/*
 * main() for a fuzz target built without libFuzzer: feeds it every file of
 * the directories given, once, so that each build's tests replay the
 * corpus. A broken invariant aborts; an empty corpus fails too (it would
 * test nothing).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feeds the file at path to the target; -1 when it could not be read. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	int err = -1;
	uint8_t *data = NULL;
	long size;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (data = malloc(size ? (size_t)size : 1)) && fread(data, 1, (size_t)size, f) == (size_t)size) {
		LLVMFuzzerTestOneInput(data, (size_t)size); /* exactly its size: ASan sees past it */
		err = 0;
	}
	free(data);
	fclose(f);
	return err;
}

int main(int argc, char **argv)
{
	int replayed = 0;
	for (int i = 1; i < argc; i++) {
		DIR *dir = opendir(argv[i]);
		if (!dir) {
			fprintf(stderr, "replay: cannot open %s\n", argv[i]);
			return 1;
		}
		struct dirent *e;
		while ((e = readdir(dir))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (replay_file(path) < 0) {
				fprintf(stderr, "replay: cannot read %s\n", path);
				closedir(dir);
				return 1;
			}
			replayed++;
		}
		closedir(dir);
	}
	printf("replay: %d inputs replayed, every invariant held\n", replayed);
	return replayed > 0 ? 0 : 1;
}
