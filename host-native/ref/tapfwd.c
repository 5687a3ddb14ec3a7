// The reference for `wasmap bench --netns`: a trivial TAP<->TAP forwarder in C with the
// virtio-net header and offloads on (what a plain hypervisor backend does), so wasmap's TAP
// path can be compared with the simplest native program doing the same job.
// usage: tapfwd TAP1 TAP2     (creates or opens both; runs until killed)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int tap(const char *name) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { perror("open /dev/net/tun"); return -1; }
  struct ifreq ifr; memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  int hdr = 12;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
      ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) < 0) {
    fprintf(stderr, "tapfwd: %s: %s\n", name, strerror(errno));
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: tapfwd TAP1 TAP2\n"); return 1; }
  int fd[2] = {tap(argv[1]), tap(argv[2])};
  if (fd[0] < 0 || fd[1] < 0) return 1;
  printf("ready\n"); fflush(stdout);
  static char buf[65536 + 64];
  struct pollfd p[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};
  for (;;) {
    if (poll(p, 2, -1) < 0 && errno != EINTR) { perror("poll"); return 1; }
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      for (int k = 0; k < 256; k++) { // a batch per wake-up
        ssize_t n = read(fd[i], buf, sizeof buf);
        if (n <= 0) break;
        if (write(fd[1 - i], buf, (size_t)n) < 0 && errno != EAGAIN && errno != EIO) { perror("write"); return 1; }
      }
    }
  }
}
