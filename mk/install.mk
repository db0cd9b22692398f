# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=/etc]
#
#   PREFIX/sbin       jitwgd, jitwg-xdp, wgdevctl (need capabilities)
#   PREFIX/bin        jitwgctl (no privileges)
#   PREFIX/lib/jitwg  jitwg.bpf.o, for bpftool deployments (jitwgd and
#                     jitwg-xdp embed the program: they do not read it)
#   UNITDIR           jitwgd@.service, one instance per WireGuard device
#   SYSCONFDIR/jitwg  example.conf (copy to DEV.conf)
#   PREFIX/share/jitwg dashboards/ (Grafana), README, docs
#
# Nothing outside DESTDIR is touched: no user is created (the unit uses
# DynamicUser) and systemd is not reloaded.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib/jitwg
DATADIR    ?= $(PREFIX)/share/jitwg
DOCDIR     ?= $(PREFIX)/share/doc/jitwg
# systemd reads /usr/local/lib/systemd/system as well as /lib/systemd/system.
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install

INSTALL_SBINS := jitwgd jitwg-xdp wgdevctl
INSTALL_BINS  := jitwgctl
DASHBOARDS    := $(wildcard dashboards/*.json)

$(BUILD)/jitwgd@.service: dist/jitwgd@.service.in mk/install.mk
	@mkdir -p $(BUILD)
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    -e 's|@DOCDIR@|$(DOCDIR)|g' $< > $@.tmp
	mv $@.tmp $@

.PHONY: install uninstall $(BUILD)/jitwgd@.service
install: all $(BUILD)/jitwgd@.service
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0755 $(addprefix $(BUILD)/,$(INSTALL_SBINS)) $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 0755 $(addprefix $(BUILD)/,$(INSTALL_BINS)) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 $(BUILD)/jitwg.bpf.o $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 0644 $(BUILD)/jitwgd@.service $(DESTDIR)$(UNITDIR)/
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/jitwg
	$(INSTALL) -m 0644 dist/example.conf $(DESTDIR)$(SYSCONFDIR)/jitwg/example.conf
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/
	$(if $(DASHBOARDS),$(INSTALL) -d $(DESTDIR)$(DATADIR)/dashboards)
	$(if $(DASHBOARDS),$(INSTALL) -m 0644 $(DASHBOARDS) $(DESTDIR)$(DATADIR)/dashboards/)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(INSTALL_SBINS)) \
	      $(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_BINS)) \
	      $(DESTDIR)$(LIBDIR)/jitwg.bpf.o $(DESTDIR)$(UNITDIR)/jitwgd@.service \
	      $(DESTDIR)$(SYSCONFDIR)/jitwg/example.conf
	rm -rf $(DESTDIR)$(DOCDIR) $(DESTDIR)$(DATADIR)/dashboards
	-rmdir $(DESTDIR)$(LIBDIR) $(DESTDIR)$(DATADIR) 2>/dev/null
