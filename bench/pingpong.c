// pingpong.c: the round-trip ceiling of a machine's loopback, without Go.
//
// A forked server and a client on 127.0.0.1:PORT, blocking sockets with
// TCP_NODELAY: the client writes 218 bytes (a PUB of 200) and waits for
// 10 (an OK frame), for SECONDS. What it prints is the most any PUB-per-
// round-trip broker could do here with one connection (docs/performance.md).
//
//   gcc -O2 -o /tmp/pingpong bench/pingpong.c && /tmp/pingpong 26180 3
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { REQ = 218, RESP = 10 };

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void serve(int c) {
	char buf[4096], ok[RESP] = {0, 0, 0, 6, 0, 0, 0, 0, 'O', 'K'};
	for (;;) {
		for (int got = 0; got < REQ;) {
			int n = read(c, buf, sizeof buf);
			if (n <= 0) _exit(0);
			got += n;
		}
		if (write(c, ok, RESP) != RESP) _exit(0);
	}
}

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: pingpong PORT SECONDS\n");
		return 2;
	}
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (void *)&a, sizeof a) || listen(ls, 1)) {
		perror("listen");
		return 1;
	}
	if (fork() == 0) {
		int c = accept(ls, 0, 0);
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		serve(c);
	}
	int s = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(s, (void *)&a, sizeof a)) {
		perror("connect");
		return 1;
	}
	char req[REQ], buf[64];
	memset(req, 'a', sizeof req);
	long n = 0;
	double t0 = now(), t, secs = atof(argv[2]);
	do {
		for (int i = 0; i < 256; i++, n++) {
			if (write(s, req, REQ) != REQ) return 1;
			for (int got = 0; got < RESP;) {
				int k = read(s, buf, sizeof buf);
				if (k <= 0) return 1;
				got += k;
			}
		}
		t = now();
	} while (t - t0 < secs);
	printf("%.0f round trips/s (%.1f us each)\n", n / (t - t0), (t - t0) / n * 1e6);
	close(s);
	wait(0);
	return 0;
}
