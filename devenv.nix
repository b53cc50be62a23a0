# devenv (https://devenv.sh) for hashpool: the build toolchain, the stack as separate processes,
# and a Prometheus that scrapes every role.
#
#   devenv shell                     Rust, cmake, boost, protoc, cargo-nextest, sqlite, prometheus
#   devenv up                        devnet: template provider, mint, pool, translator, CPU miner
#   devenv --profile testnet4 up     Bitcoin Core + sv2-tp on testnet4, mint, pool, translator
#   devenv --profile mainnet up      the same on mainnet (see the mainnet notes below)
#
# Needs devenv >= 2.0: it uses the native process manager's `after` dependencies and `ready`
# probes (with process-compose, devenv >= 2.0 turns `after` into depends_on itself).
#
# Prometheus UI: http://127.0.0.1:9090. Data and keys live under .devenv/state/ and survive
# restarts; delete .devenv/state/hashpool-<network> to start over with new keys.
{ pkgs, lib, config, ... }:

let
  cfg = config.hashpool;
  root = config.devenv.root;
  state = config.devenv.state;

  # Every role runs from one release build, made once per `devenv up` by the task
  # "hashpool:build" that all role processes wait for (cargo makes it a no-op when nothing
  # changed). Running `cargo run` per process instead would build five times in parallel.
  hashpool = "${root}/target/release/hashpool";

  grep = "${pkgs.gnugrep}/bin/grep";
  sed = "${pkgs.gnused}/bin/sed";

  # The fixed devnet ports (DevnetPorts::FIXED in roles/hashpool/src/stack_configs.rs) that
  # `hashpool devnet init` writes without --port-base; deploy/prometheus-devnet.yml scrapes the
  # same ones, and config/testnet4 and config/mainnet keep the metrics ports.
  ports = {
    templateProvider = 18442;
    mintLink = 18443;
    mintHttp = 13338;
    pool = 13333;
    sv1 = 34255;
    poolMetrics = 13334;
    tpRpc = 18444;
    mintMetrics = 13339;
    translatorMetrics = 34256;
    tpMetrics = 18445;
    prometheus = 9090;
  };

  # Ready once the role serves /metrics. Not /health: that goes 503 whenever a peer is down, so
  # a restarted mint would mark the pool unready too; the roles reconnect to their peers by
  # themselves, the ordering only has to get them started in a sensible sequence.
  metricsReady = port: {
    http.get = {
      inherit port;
      path = "/metrics";
    };
    period = 1;
  };

  # ---- devnet -----------------------------------------------------------------------------
  devnetDir = "${state}/hashpool-devnet";
  devnetConfigs = [ "template-provider" "mint" "pool" "translator" "miner" ];

  # ---- testnet4 / mainnet: Bitcoin Core + sv2-tp ---------------------------------------------
  # bitcoin-node and sv2-tp are not taken from nixpkgs: sv2-tp needs Bitcoin Core >= 30.2 built
  # with IPC (the official release has it: `bitcoin -m node -ipcbind=unix`), and sv2-tp itself
  # is a separate release (github.com/stratum-mining/sv2-tp). Put `bitcoin` and `sv2-tp` on PATH.
  chains = {
    # netSubdir: Bitcoin Core's per-network subdirectory of the datadir (none on mainnet).
    testnet4 = { chain = "testnet4"; netSubdir = "/testnet4"; sv2Port = 48336; };
    mainnet = { chain = "main"; netSubdir = ""; sv2Port = 8336; };
  };
  chain = chains.${cfg.network} or chains.testnet4;
  netDir = "${state}/hashpool-${cfg.network}";
  bitcoinDir = "${state}/bitcoin-${cfg.network}";
  nodeSocket = "${bitcoinDir}${chain.netSubdir}/node.sock";
  sv2tpDir = "${netDir}/sv2-tp";
  sv2tpLog = "${sv2tpDir}${chain.netSubdir}/debug.log";
in
{
  options.hashpool.network = lib.mkOption {
    type = lib.types.enum [ "devnet" "testnet4" "mainnet" ];
    default = "devnet";
    description = ''
      Which stack `devenv up` runs: the devnet (regtest on libbitcoinkernel, CPU miner), or
      mint, pool and translator against Bitcoin Core + sv2-tp. Set through the profiles
      (`devenv --profile testnet4 up`), not by hand.
    '';
  };

  config = lib.mkMerge [
    {
      # cmake + boost: libbitcoinkernel-sys builds Bitcoin Core's validation code; protobuf:
      # protoc for CDK; cargo-nextest: the test runner; sqlite: the sqlite3 shell to inspect the
      # roles' databases; prometheus (and promtool); curl: poking /metrics and /health.
      packages = [
        pkgs.cmake
        pkgs.boost
        pkgs.protobuf
        pkgs.cargo-nextest
        pkgs.sqlite
        pkgs.prometheus
        pkgs.curl
      ];

      languages.rust.enable = true;

      profiles = {
        testnet4.module = { hashpool.network = "testnet4"; };
        mainnet.module = { hashpool.network = "mainnet"; };
      };

      tasks."hashpool:build" = {
        exec = ''
          cd ${root}
          cargo build --release -p hashpool --bin hashpool
        '';
      };

      # The same scrape file humans use (deploy/prometheus-devnet.yml). devenv's own
      # services.prometheus builds its YAML from Nix attributes, which would be a second copy of
      # the targets, so Prometheus runs as a plain process.
      processes.prometheus = {
        exec = ''
          mkdir -p ${state}/prometheus
          exec ${pkgs.prometheus}/bin/prometheus \
            --config.file=${root}/deploy/prometheus-devnet.yml \
            --storage.tsdb.path=${state}/prometheus \
            --web.listen-address=127.0.0.1:${toString ports.prometheus}
        '';
        ready = {
          http.get = {
            port = ports.prometheus;
            path = "/-/ready";
          };
          period = 1;
        };
      };
    }

    # ---- devnet: `devenv up` ------------------------------------------------------------------
    (lib.mkIf (cfg.network == "devnet") {
      # Configs and authority keys for every role, written once: if the configs exist they are
      # kept (with any hand edits), and so are the keys in each role's data dir.
      tasks."hashpool:devnet-init" = {
        exec = "${hashpool} devnet init --data-dir ${devnetDir}";
        status = ''
          for role in ${lib.concatStringsSep " " devnetConfigs}; do
            test -f ${devnetDir}/$role.toml || exit 1
          done
        '';
        after = [ "hashpool:build" ];
      };

      processes = {
        template-provider = {
          exec = "exec ${hashpool} template-provider -c ${devnetDir}/template-provider.toml";
          after = [ "hashpool:devnet-init" ];
          # /metrics is bound after the TDP and RPC listeners: once it answers, all are up.
          ready = metricsReady ports.tpMetrics;
        };

        mint = {
          exec = "exec ${hashpool} mint -c ${devnetDir}/mint.toml";
          after = [ "hashpool:devnet-init" ];
          ready = metricsReady ports.mintMetrics;
        };

        pool = {
          exec = "exec ${hashpool} pool -c ${devnetDir}/pool.toml";
          after = [ "devenv:processes:template-provider" "devenv:processes:mint" ];
          ready = metricsReady ports.poolMetrics;
        };

        translator = {
          exec = "exec ${hashpool} translator -c ${devnetDir}/translator.toml";
          after = [ "devenv:processes:pool" ];
          ready = metricsReady ports.translatorMetrics;
        };

        miner = {
          exec = "exec ${hashpool} miner -c ${devnetDir}/miner.toml";
          after = [ "devenv:processes:translator" ];
        };
      };
    })

    # ---- testnet4 / mainnet: `devenv --profile testnet4 up` -------------------------------------
    # No template provider and no CPU miner: sv2-tp serves templates from Bitcoin Core, and real
    # miners (or any SV1 CPU miner) connect to the translator on port 34255 (sv1_listen).
    #
    # Mainnet: a full node (several hundred GB, days of initial sync), and config/mainnet/pool.toml
    # has a payout_script placeholder on purpose: the pool refuses to start until you replace it
    # in .devenv/state/hashpool-mainnet/pool.toml with the hex script of your own wallet.
    (lib.mkIf (cfg.network != "devnet") {
      # Renders config/<network>/{mint,pool,translator}.toml into the state dir, once.
      # `hashpool devnet init` is used only because it creates the mint's and the pool's
      # authority keys in <dir>/<role>/authority.key and writes their public halves into its
      # configs; the devnet configs it writes are then thrown away. The data dirs
      # (/var/lib/hashpool/<role>) and Bitcoin Core's datadir (/var/lib/bitcoind) are mapped into
      # .devenv/state, the pool is reached on 127.0.0.1, and public_url is dropped so translators
      # use http://<mint http_listen>. sv2-tp's key is filled in when the pool starts.
      tasks."hashpool:net-init" = {
        exec = ''
          set -euo pipefail
          ${hashpool} devnet init --data-dir ${netDir} >/dev/null
          mint_key=$(${sed} -n 's/^mint_authority = "\(.*\)"$/\1/p' ${netDir}/pool.toml)
          pool_key=$(${sed} -n 's/^pool_authority = "\(.*\)"$/\1/p' ${netDir}/translator.toml)
          if [ -z "$mint_key" ] || [ -z "$pool_key" ]; then
            echo "could not read the authority keys from the configs devnet init wrote" >&2
            exit 1
          fi
          rm -rf ${netDir}/template-provider ${netDir}/*.toml
          for role in mint pool translator; do
            ${sed} -e "s|/var/lib/hashpool|${netDir}|g" \
                -e "s|/var/lib/bitcoind|${bitcoinDir}|g" \
                -e "s|REPLACE_WITH_POOL_AUTHORITY_PUBLIC_KEY|$pool_key|g" \
                -e "s|REPLACE_WITH_MINT_AUTHORITY_PUBLIC_KEY|$mint_key|g" \
                -e "s|REPLACE_WITH_POOL_HOSTNAME|127.0.0.1|g" \
                -e "/^public_url = /d" \
                ${root}/config/${cfg.network}/$role.toml > ${netDir}/$role.toml
          done
        '';
        status = ''
          test -f ${netDir}/mint.toml && test -f ${netDir}/pool.toml \
            && test -f ${netDir}/translator.toml
        '';
        after = [ "hashpool:build" ];
      };

      processes = {
        # -server: the JSON-RPC the pool follows found blocks with (cookie auth, localhost only);
        # -ipcbind=unix: the socket sv2-tp connects to (<datadir>/<network>/node.sock).
        # On SIGTERM Core flushes its chainstate; if devenv's default 5 s grace cuts that short
        # it recovers on the next start. (devenv >= 2.2.3: shutdown.grace = 60; would allow it.)
        bitcoin-node = {
          exec = ''
            if ! command -v bitcoin >/dev/null; then
              echo "bitcoin not on PATH: install Bitcoin Core >= 30.2 (release binaries)" >&2
              exit 1
            fi
            mkdir -p ${bitcoinDir}
            exec bitcoin -m node -chain=${chain.chain} -datadir=${bitcoinDir} \
              -server=1 -ipcbind=unix -printtoconsole=1
          '';
          ready = {
            exec = "test -S ${nodeSocket}";
            period = 2;
          };
        };

        # sv2-tp waits for Core's initial block download before it serves templates; the pool
        # keeps its connection and gets work once that is over.
        sv2-tp = {
          exec = ''
            if ! command -v sv2-tp >/dev/null; then
              echo "sv2-tp not on PATH: install it from github.com/stratum-mining/sv2-tp" >&2
              exit 1
            fi
            mkdir -p ${sv2tpDir}
            exec sv2-tp -chain=${chain.chain} -datadir=${sv2tpDir} \
              -ipcconnect=unix:${nodeSocket} \
              -sv2bind=127.0.0.1 -sv2port=${toString chain.sv2Port} \
              -debug=sv2 -printtoconsole=1
          '';
          after = [ "devenv:processes:bitcoin-node" ];
          # sv2-tp logs its authority key once it is connected to the node; the pool needs it.
          ready = {
            exec = "${grep} -q 'Template Provider authority key' ${sv2tpLog}";
            period = 2;
          };
        };

        mint = {
          exec = "exec ${hashpool} mint -c ${netDir}/mint.toml";
          after = [ "hashpool:net-init" ];
          ready = metricsReady ports.mintMetrics;
        };

        # Pins whatever key the local sv2-tp logged last (it keeps its key in its datadir).
        pool = {
          exec = ''
            key=$(${sed} -n \
              's/.*Template Provider authority key: \([1-9A-HJ-NP-Za-km-z]*\).*/\1/p' \
              ${sv2tpLog} | tail -n 1)
            ${sed} -i "s|^tp_authority = .*|tp_authority = \"$key\"|" ${netDir}/pool.toml
            exec ${hashpool} pool -c ${netDir}/pool.toml
          '';
          after = [ "devenv:processes:mint" "devenv:processes:sv2-tp" ];
          ready = metricsReady ports.poolMetrics;
        };

        translator = {
          exec = "exec ${hashpool} translator -c ${netDir}/translator.toml";
          after = [ "devenv:processes:pool" ];
          ready = metricsReady ports.translatorMetrics;
        };
      };
    })
  ];
}
