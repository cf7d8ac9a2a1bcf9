"""`obiam ci-policy --env ENV`: the IAM policy of each CI role of one environment.

Two roles per environment, each assumed through GitHub's OIDC provider (the trust policy pins
the repository and the GitHub environment, so a job outside that environment cannot assume it):

- **plan** (`<env>-plan` GitHub environment, no reviewers): read-only. Reads the state and holds
  the state lock while it plans (locking stays on: an unlocked plan can read a half-written state),
  describes what the stack manages, and reads no secret the state does not already hold. It may
  read the secrets this stack itself creates (`obiam/<env>/*`): Terraform's refresh of
  `aws_secretsmanager_secret_version` calls GetSecretValue, and their values are in the state it
  can read anyway. Every other secret, SecureString decryption and object read is denied.
- **deploy** (the protected `<env>` GitHub environment, required reviewers for production): writes
  the state and changes only the AWS services the synthesized stack uses, in the environment's
  region; it passes only the stack's own roles, and may not touch the state bucket's policy.

The services come from the synthesized stack (its resource and data source types), so the policy
follows the stack. AWS facts: IAM User Guide, "Actions, resources, and condition keys"; the S3
backend's permissions: developer.hashicorp.com/terraform/language/backend/s3 ("Permissions Required").
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from obiam import branch_scope
from obiam.environments import BranchBase, ConfigError, Deployable, Environment, load_file
from obiam.naming import Names
from obiam.plan_artifact import plan_key_prefix

# Terraform resource type prefix -> IAM service prefix, for the services this toolkit's stacks use.
SERVICES: tuple[tuple[str, str], ...] = (
    ("aws_db_", "rds"), ("aws_rds_", "rds"), ("aws_efs_", "elasticfilesystem"),
    ("aws_directory_service_", "ds"), ("aws_lb", "elasticloadbalancing"), ("aws_autoscaling_", "autoscaling"),
    ("aws_cloudwatch_log_", "logs"), ("aws_cloudwatch_metric_alarm", "cloudwatch"),
    ("aws_cloudwatch_event_", "events"), ("aws_iam_", "iam"), ("aws_kms_", "kms"), ("aws_lambda_", "lambda"),
    ("aws_s3_", "s3"), ("aws_secretsmanager_", "secretsmanager"), ("aws_sns_", "sns"), ("aws_ssm_", "ssm"),
    ("aws_wafv2_", "wafv2"), ("aws_acm_", "acm"), ("aws_caller_identity", "sts"), ("aws_region", "ec2"),
    ("aws_availability_zones", "ec2"), ("aws_ami", "ec2"), ("aws_launch_template", "ec2"), ("aws_vpc", "ec2"),
    ("aws_subnet", "ec2"), ("aws_route53_", "route53"), ("aws_route", "ec2"), ("aws_nat_gateway", "ec2"),
    ("aws_eip", "ec2"),
    ("aws_internet_gateway", "ec2"), ("aws_security_group", "ec2"), ("aws_default_security_group", "ec2"),
    ("aws_flow_log", "ec2"), ("aws_network_", "ec2"), ("aws_instance", "ec2"), ("aws_ebs_", "ec2"),
    ("aws_dynamodb_", "dynamodb"), ("aws_backup_", "backup"),
)
# Data sources answered from the provider's own tables, without an API call.
NO_API = frozenset({"aws_elb_service_account", "aws_partition", "aws_iam_policy_document"})


class PolicyError(Exception):
    """The environment or its synthesized stack cannot be read."""


def account_id(environment: Deployable) -> str:
    """The environment's AWS account (`account.id`, the one the provider accepts)."""
    return environment.config.account.id


def services(stack: dict[str, Any]) -> list[str]:
    types = {t for block in ("resource", "data") for t in (stack.get(block) or {})}
    found, unknown = set(), sorted(t for t in types if t.startswith("aws_") and t not in NO_API)
    for resource_type in list(unknown):
        for prefix, service in SERVICES:
            if resource_type.startswith(prefix):
                found.add(service)
                unknown.remove(resource_type)
                break
    if unknown:
        raise PolicyError(f"no IAM service known for {', '.join(unknown)}: add it to SERVICES in obiam/ci_policy.py")
    return sorted(found)


def _state(environment: Deployable, write: bool) -> list[dict[str, Any]]:
    state = environment.config.state
    key = Names(environment.name).state_key(state.key_prefix)
    bucket = f"arn:aws:s3:::{state.bucket}"
    statements: list[dict[str, Any]] = [
        {"Sid": "StateList", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket,
          "Condition": {"StringLike": {"s3:prefix": [key, f"{key}.tflock",
                                                     f"{plan_key_prefix(state.key_prefix, environment.name)}/*"]}}},
        {"Sid": "StateRead", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket}/{key}"},
    ]
    plans = f"{bucket}/{plan_key_prefix(state.key_prefix, environment.name)}/*"
    if write:
        statements.append({"Sid": "StateWrite", "Effect": "Allow", "Action": "s3:PutObject",
                           "Resource": f"{bucket}/{key}"})
        statements.append({"Sid": "ReviewedPlans", "Effect": "Allow", "Action": "s3:GetObject", "Resource": plans})
    else:
        # The binary plan holds the state's secrets: it is kept beside the state, not in a GitHub artifact.
        statements.append({"Sid": "ReviewedPlans", "Effect": "Allow", "Action": "s3:PutObject", "Resource": plans})
    if state.lock == "s3_lockfile":
        statements.append({"Sid": "StateLock", "Effect": "Allow",
                           "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                           "Resource": f"{bucket}/{key}.tflock"})
    else:
        region = state.region or environment.config.region
        statements.append({"Sid": "StateLock", "Effect": "Allow",
                           "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem",
                                      "dynamodb:DeleteItem"],
                           "Resource": f"arn:aws:dynamodb:{region}:{account_id(environment)}:table/"
                                       f"{state.dynamodb_table}"})
    statements.append({"Sid": "StateEncryption", "Effect": "Allow",
                       "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                       "Condition": {"StringEquals": {
                           "kms:ViaService": f"s3.{state.region or environment.config.region}.amazonaws.com"}}})
    return statements


def plan_policy(environment: Deployable, stack: dict[str, Any]) -> dict[str, Any]:
    account, region = account_id(environment), environment.config.region
    own_secrets = f"arn:aws:secretsmanager:{region}:{account}:secret:obiam/{environment.name}/*"
    reads = [f"{s}:{verb}*" for s in services(stack) for verb in ("Describe", "List", "Get")]
    return {"Version": "2012-10-17", "Statement": [
        *_state(environment, write=False),
        {"Sid": "Refresh", "Effect": "Allow", "Action": reads, "Resource": "*"},
        {"Sid": "NoSecretsBeyondTheState", "Effect": "Deny", "Action": "secretsmanager:GetSecretValue",
         "NotResource": own_secrets},
        {"Sid": "NoDecryptBeyondTheState", "Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*",
         "Condition": {"StringNotEquals": {"kms:ViaService": [
             f"s3.{environment.config.state.region or region}.amazonaws.com",
             f"secretsmanager.{region}.amazonaws.com"]}}},
        {"Sid": "NoObjectReads", "Effect": "Deny", "Action": "s3:GetObject",
         "NotResource": [f"arn:aws:s3:::{environment.config.state.bucket}/*"]},
        {"Sid": "ReadOnly", "Effect": "Deny", "NotAction": [
            "s3:PutObject", "s3:DeleteObject", "dynamodb:PutItem", "dynamodb:DeleteItem", "kms:GenerateDataKey",
            *reads, "s3:ListBucket", "dynamodb:DescribeTable", "kms:Decrypt", "sts:GetCallerIdentity"],
         "Resource": "*"},
    ]}


def stack_regions(environment: Deployable, stack: dict[str, Any]) -> list[str]:
    """The environment's region plus any a resource names itself (provider 6's per-resource `region`,
    e.g. the backup copy vault in a second region)."""
    named = {resource["region"] for resources in (stack.get("resource") or {}).values()
             for resource in resources.values() if isinstance(resource.get("region"), str)}
    return sorted({environment.config.region, *named})


def deploy_policy(environment: Deployable, stack: dict[str, Any]) -> dict[str, Any]:
    account = account_id(environment)
    regions = stack_regions(environment, stack)
    # Route 53 is global (its requests carry us-east-1): its own statement, limited to the zone.
    regional = [s for s in services(stack) if s not in ("iam", "sts", "route53")]
    # A pattern of names (eph-*, every branch) is open-ended already.
    prefix = Names(environment.name).prefix.rstrip("*")
    return {"Version": "2012-10-17", "Statement": [
        *_state(environment, write=True),
        {"Sid": "ManageTheStack", "Effect": "Allow", "Action": [f"{s}:*" for s in regional], "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": regions}}},
        {"Sid": "GlobalReads", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*", "sts:GetCallerIdentity"],
         "Resource": "*"},
        {"Sid": "OwnRolesOnly", "Effect": "Allow", "Action": ["iam:*Role*", "iam:*InstanceProfile*",
                                                              "iam:CreateServiceLinkedRole", "iam:TagRole",
                                                              "iam:UntagRole"],
         "Resource": [f"arn:aws:iam::{account}:role/{prefix}*", f"arn:aws:iam::{account}:instance-profile/{prefix}*",
                      f"arn:aws:iam::{account}:role/aws-service-role/*"]},
        {"Sid": "PassOwnRolesOnly", "Effect": "Deny", "Action": "iam:PassRole",
         "NotResource": [f"arn:aws:iam::{account}:role/{prefix}*", f"arn:aws:iam::{account}:role/aws-service-role/*"]},
        {"Sid": "StateBucketStaysAsBootstrapped", "Effect": "Deny",
         "Action": ["s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketVersioning",
                    "s3:PutEncryptionConfiguration", "s3:PutBucketPublicAccessBlock"],
         "Resource": f"arn:aws:s3:::{environment.config.state.bucket}"},
        {"Sid": "NoLongLivedCredentials", "Effect": "Deny",
         "Action": ["iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile"], "Resource": "*"},
        *_dns_statements(environment),
    ]}


def _dns_statements(environment: Deployable) -> list[dict[str, Any]]:
    if isinstance(environment, BranchBase):
        return []
    zone = environment.config.load_balancer.hosted_zone_id
    if zone is None:
        return []
    return [{"Sid": "OwnAliasRecord", "Effect": "Allow",
             "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:GetHostedZone"],
             "Resource": f"arn:aws:route53:::hostedzone/{zone}"},
            {"Sid": "DnsChanges", "Effect": "Allow", "Action": "route53:GetChange",
             "Resource": "arn:aws:route53:::change/*"}]


def trust_policy(account: str, repository: str, *github_environments: str) -> dict[str, Any]:
    """Only jobs of `repository` running in one of `github_environments` may assume the role."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"},
        "Condition": {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            # A list is "any of": each names one GitHub environment of this repository.
            "token.actions.githubusercontent.com:sub": [
                f"repo:{repository}:environment:{e}" for e in github_environments]}}}]}


def github_environments(environment: Deployable) -> tuple[str, str, str]:
    """(plan, PR plan, deploy) GitHub environments of a stack; prod deploys through `production`.
    `<env>-plan` admits only `main` (deployment branch rule); `<env>-pr-plan` runs a pull request's
    code and, for production, waits for a required reviewer before it gets any credential."""
    deploy = "production" if environment.name == "prod" else environment.name
    return f"{deploy}-plan", f"{deploy}-pr-plan", deploy


def policies(environment: Deployable, stack: dict[str, Any], repository: str) -> dict[str, Any]:
    account = account_id(environment)
    plan_env, pr_plan_env, deploy_env = github_environments(environment)
    return {
        f"obiam-{environment.name}-ci-plan": {"github_environment": [plan_env, pr_plan_env],
                                              "trust": trust_policy(account, repository, plan_env, pr_plan_env),
                                              "policy": plan_policy(environment, stack)},
        f"obiam-{environment.name}-ci-deploy": {"github_environment": deploy_env,
                                                "trust": trust_policy(account, repository, deploy_env),
                                                "policy": deploy_policy(environment, stack)},
    }


# The GitHub environment and the role of .github/workflows/ephemeral.yml (deploy, destroy and reap).
EPHEMERAL_GITHUB_ENVIRONMENT = "ephemeral"


def branch_roles(template: Environment, stack: dict[str, Any], repository: str) -> dict[str, Any]:
    """The one role the per-branch workflow uses for every branch: the deploy role's permissions with every
    name a branch stack can have (`eph-*`: its state key, its roles, its secrets), and what the reaper
    needs besides: finding branches by tag and announcing them."""
    account, region = account_id(template), template.config.region
    branches = dataclasses.replace(template, name=f"{branch_scope.BRANCH_ENVIRONMENT_PREFIX}*")
    policy = deploy_policy(branches, stack)
    policy["Statement"] += [
        {"Sid": "FindBranches", "Effect": "Allow", "Action": "tag:GetResources", "Resource": "*"},
        {"Sid": "AnnounceReaping", "Effect": "Allow", "Action": "sns:Publish",
         "Resource": f"arn:aws:sns:{region}:{account}:*"},
    ]
    return {"obiam-ephemeral-ci": {"github_environment": EPHEMERAL_GITHUB_ENVIRONMENT,
                                   "trust": trust_policy(account, repository, EPHEMERAL_GITHUB_ENVIRONMENT),
                                   "policy": policy}}


def _branch_stack(outdir: Path) -> Path:
    found = sorted((outdir / "stacks").glob(f"{branch_scope.BRANCH_ENVIRONMENT_PREFIX}*/cdk.tf.json"))
    if not found:
        raise PolicyError(f"no branch stack under {outdir}/stacks: synthesize one first "
                          f"(OBIAM_EPHEMERAL_BRANCH=ci-policy make synth); every branch's role follows its shape")
    return found[0]


def ci_policy_command(env: Annotated[str, typer.Option("--env", help="environment (environments/<env>.yaml)")],
                      outdir: Annotated[Path, typer.Option(help="the cdktf.out tree")] = Path("cdktf.out"),
                      environments_dir: Annotated[Path, typer.Option(help="environment files")] = Path("environments"),
                      repository: Annotated[str, typer.Option(help="GitHub owner/name the roles trust")]
                      = "OWNER/REPOSITORY") -> None:
    """Print the plan and deploy roles of one environment: trust and permission policies (JSON). With
    --env ephemeral, the one role of the per-branch workflow."""
    stack_path = outdir / "stacks" / env / "cdk.tf.json"
    try:
        # An environment or a branch base: each stack has its own plan and deploy roles.
        environment = load_file(environments_dir / f"{env}.yaml", Path.cwd())
        if isinstance(environment, Environment) and environment.config.ephemeral is not None:
            stack_path = _branch_stack(outdir)
        try:
            stack = json.loads(stack_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolicyError(f"{stack_path} not found: run `make synth` first (the policy follows the "
                              "synthesized stack)") from None
        except (OSError, ValueError) as error:
            raise PolicyError(f"{stack_path}: not a synthesized stack: {error}") from None
        roles = (branch_roles(environment, stack, repository)
                 if isinstance(environment, Environment) and environment.config.ephemeral is not None
                 else policies(environment, stack, repository))
        sys.stdout.write(json.dumps(roles, indent=2) + "\n")
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        raise typer.Exit(2) from None
    except PolicyError as error:
        print(f"obiam ci-policy: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
