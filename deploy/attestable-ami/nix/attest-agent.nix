# deploy/attestable-ami/nix/attest-agent.nix: a NixOS module that puts attest-agent
# and its unit into an attestable AMI built with Nix (as AWS's NixOS sample builds
# one: UKI, read-only store, tpm_pcr.json from the build). Import it from the
# image's configuration.nix and set services.attest-agent.settings; the settings
# are in the store, so in the measured image (register the new tpm_pcr.json with
# attestctl policy import after any change).
{ config, lib, pkgs, ... }:
let
  cfg = config.services.attest-agent;
  # attest built from a source tree (this repository at a pinned commit).
  attest = pkgs.stdenv.mkDerivation {
    pname = "attest";
    version = "0.1.0";
    src = cfg.src;
    nativeBuildInputs = with pkgs; [ autoreconfHook pkg-config ];
    buildInputs = with pkgs; [ openssl libcbor jansson sqlite libmicrohttpd curl cjose postgresql.lib ];
    configureFlags = [ "--sysconfdir=/etc" ];
    installFlags = [ "sysconfdir=$(out)/etc" ];
  };
  settingsFile = pkgs.writeText "agent.json" (builtins.toJSON cfg.settings);
in
{
  options.services.attest-agent = {
    enable = lib.mkEnableOption "attest-agent, the attestation agent in front of the model server";
    src = lib.mkOption {
      type = lib.types.path;
      description = "The attest source tree (a fetchFromGitHub at a pinned revision).";
    };
    settings = lib.mkOption {
      type = lib.types.attrsOf (lib.types.oneOf [ lib.types.str lib.types.int lib.types.bool ]);
      default = {
        attester = "nitro-tpm";
        policy = "llm";
        verifier = "https://verifier.example:8440";
        listen = "0.0.0.0:8443";
        advertise = "https://instance.example:8443";
        upstream = "http://127.0.0.1:8000";
      };
      description = "attest-agent's --config keys (its flags' long names).";
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ attest ];
    systemd.services.attest-agent = {
      description = "attest-agent: attests this instance and seals the consumers' path";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      path = [ pkgs.aws-nitro-tpm-tools or null ];
      serviceConfig = {
        ExecStart = "${attest}/bin/attest-agent --config ${settingsFile}";
        DynamicUser = true;
        SupplementaryGroups = [ "tss" ];
        DeviceAllow = [ "/dev/tpm0 rw" "/dev/tpmrm0 rw" ];
        StateDirectory = "attest";
        RuntimeDirectory = "model";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        Restart = "on-failure";
      };
    };
  };
}
