# The archive's S3 bucket and the crawler's IAM policy.
#   terraform init && terraform apply -var bucket_name=my-news-archive -var prefix=prod
# Then attach the output crawler_policy_arn to the crawler's role (the IRSA role of
# infra/kubernetes/cronjob.yaml, or an instance role) and run with ARCHIVE_URI = the output archive_uri.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "bucket_name" {
  description = "S3 bucket of the archive (globally unique)"
  type        = string
  default     = "news-archive"
}

variable "prefix" {
  description = "Key prefix the crawler writes under: ARCHIVE_URI=s3://<bucket_name>/<prefix>"
  type        = string
  default     = "prod"
}

variable "kms_key_arn" {
  description = <<-EOT
    KMS key for SSE-KMS; empty means SSE-S3 (AES256). With a KMS key, run the crawler with
    -s ARCHIVE_S3_SSE=aws:kms: SSE-KMS ETags are not MD5s, and the crawler then skips its ETag check.
  EOT
  type        = string
  default     = ""
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object's old version is kept"
  type        = number
  default     = 30
}

locals {
  prefix      = trim(var.prefix, "/")
  objects_arn = local.prefix == "" ? "${aws_s3_bucket.archive.arn}/*" : "${aws_s3_bucket.archive.arn}/${local.prefix}/*"
  archive_uri = local.prefix == "" ? "s3://${aws_s3_bucket.archive.id}" : "s3://${aws_s3_bucket.archive.id}/${local.prefix}"
  kms         = var.kms_key_arn != ""
}

resource "aws_s3_bucket" "archive" {
  bucket = var.bucket_name
}

# Versioning: an object overwritten or deleted by mistake can be restored for noncurrent_version_days.
resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.kms ? "aws:kms" : "AES256"
      kms_master_key_id = local.kms ? var.kms_key_arn : null
    }
    bucket_key_enabled = local.kms # fewer KMS requests (and costs) per object
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket owner owns every object, access is by IAM policy only.
resource "aws_s3_bucket_ownership_controls" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket     = aws_s3_bucket.archive.id
  depends_on = [aws_s3_bucket_versioning.archive]

  # A crawl killed during a multipart upload (large Parquet files) leaves invisible parts that are billed
  # until aborted; the crawler aborts those of a key it retries, this rule clears the rest.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
  }
}

# HTTPS only.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.archive.arn, "${aws_s3_bucket.archive.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "archive" {
  bucket     = aws_s3_bucket.archive.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.archive]
}

# What the crawler does: HeadBucket at start-up (s3:ListBucket, which also makes a missing key a 404, not a
# 403), HeadObject, PutObject and multipart uploads under the prefix, listing and aborting its own leftover
# multipart uploads. It never deletes. ListBucket has no s3:prefix condition: HeadBucket carries no prefix.
data "aws_iam_policy_document" "crawler" {
  statement {
    sid       = "Bucket"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.archive.arn]
  }
  statement {
    sid       = "ArchiveObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [local.objects_arn]
  }
  dynamic "statement" {
    for_each = local.kms ? [var.kms_key_arn] : []
    content {
      sid       = "Kms"
      actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "crawler" {
  name   = "${var.bucket_name}-crawler"
  policy = data.aws_iam_policy_document.crawler.json
}

output "bucket_name" {
  value = aws_s3_bucket.archive.id
}

output "bucket_arn" {
  value = aws_s3_bucket.archive.arn
}

output "archive_uri" {
  description = "ARCHIVE_URI for the crawler"
  value       = local.archive_uri
}

output "crawler_policy_arn" {
  value = aws_iam_policy.crawler.arn
}

output "crawler_policy_json" {
  value = data.aws_iam_policy_document.crawler.json
}
